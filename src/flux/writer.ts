// Writes that survive a full socket buffer: Bun's socket.write() may take only part of the bytes.

export interface Writable {
  write(data: Uint8Array): number;
}

export class QueuedWriter {
  private readonly queue: Uint8Array[] = [];
  constructor(private readonly sock: Writable) {}

  /** Queues `data` and writes as much as the socket takes now. */
  write(data: Uint8Array): void {
    this.queue.push(data);
    if (this.queue.length === 1) this.drain();
  }

  /** Call from the socket's drain handler: writes what is left. */
  drain(): void {
    while (this.queue.length > 0) {
      const b = this.queue[0]!;
      const n = this.sock.write(b);
      if (n < b.length) {
        this.queue[0] = b.subarray(Math.max(n, 0));
        return;
      }
      this.queue.shift();
    }
  }
}
