/**
 * Ctrl-C for the demo: the first SIGINT/SIGTERM asks for a clean stop (`signal` aborts), a second
 * one exits at once with 130. Created before anything heavy loads, so a Ctrl-C during start-up is
 * never lost.
 */
export class Interrupts {
  readonly #controller = new AbortController();
  readonly signal = this.#controller.signal;
  /** Resolves at the first Ctrl-C: race it against anything slow. */
  readonly promise: Promise<void>;
  #firstAt = 0;

  constructor() {
    this.promise = new Promise((r) => this.signal.addEventListener('abort', () => r(), { once: true }));
    const handler = () => {
      if (!this.signal.aborted) {
        this.#firstAt = Date.now();
        this.#controller.abort();
        return;
      }
      // One Ctrl-C can reach us twice (the terminal signals the whole process group, and npm and
      // tsx forward it too): only a second press, not the echo of the first, forces the exit.
      if (Date.now() - this.#firstAt < 250) return;
      process.stdout.write('\nsecond Ctrl-C: exiting now without a clean stop\n');
      process.exit(130);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  }

  get aborted(): boolean {
    return this.signal.aborted;
  }
}
