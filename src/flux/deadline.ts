// One time budget for a whole command, so a slow broker cannot stretch a login past it.

import { FluxTimeoutError } from "./errors";

export class Deadline {
  private readonly end: number;
  constructor(readonly ms: number) {
    this.end = Date.now() + ms;
  }
  /** Milliseconds left; throws once the budget is spent. */
  left(what: string): number {
    const left = this.end - Date.now();
    if (left <= 0) throw new FluxTimeoutError(what, this.ms);
    return left;
  }
  /** Milliseconds left, 0 once the budget is spent: for a wait that ends early rather than fails. */
  remaining(): number {
    return Math.max(this.end - Date.now(), 0);
  }
}
