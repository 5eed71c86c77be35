// Writes that survive a full socket buffer: Bun's socket.write() may take only part of the bytes.

export interface Writable {
  write(data: Uint8Array): number;
}

export class QueuedWriter {
  private queue: Uint8Array[] = [];
  private scheduled = false;
  private blocked = false;
  constructor(private readonly sock: Writable) {}

  /**
   * Queues `data`; everything queued in one turn of the event loop goes out in one write
   * (a thousand pipelined requests are one syscall, not a thousand).
   */
  write(data: Uint8Array): void {
    this.queue.push(data);
    if (this.scheduled || this.blocked) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  /** Writes what is queued; call it from the socket's drain handler too. */
  drain(): void {
    this.blocked = false;
    if (this.queue.length === 0) return;
    let b: Uint8Array;
    if (this.queue.length === 1) b = this.queue[0]!;
    else {
      let size = 0;
      for (const q of this.queue) size += q.length;
      b = new Uint8Array(size);
      let o = 0;
      for (const q of this.queue) {
        b.set(q, o);
        o += q.length;
      }
    }
    const n = this.sock.write(b);
    if (n < b.length) {
      // The socket took only part: keep the rest until it says it can take more.
      this.queue = [b.subarray(Math.max(n, 0))];
      this.blocked = true;
      return;
    }
    this.queue = [];
  }
}
