/**
 * Watches the MODEL_DEPLOYMENT file and reports its text when it changes.
 *
 * It watches the file's directory, not the file: a Kubernetes ConfigMap volume never edits the
 * file — kubelet writes a new timestamped folder, points a `..data_tmp` symlink at it and renames
 * that over `..data`, through which `deployment.json` is a symlink — so a watch on the file (its
 * old inode) would go quiet after the first swap. Every entry changing in the directory (the
 * rename of `..data`, a plain edit, an editor's write-and-rename) schedules one debounced read;
 * the text is reported only if it differs from the last one. A slow poll backs the watch up
 * where inotify does not reach (network filesystems, a symlink into another directory).
 * `reload()` (SIGHUP) reads now and reports even unchanged text, so a refused change can be
 * retried after fixing what the file points at (a version folder copied in late).
 */
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import { ScorerError } from '../errors.js';

export type ChangeSource = 'watch' | 'poll' | 'signal';

export type DeploymentFileEvent = { source: ChangeSource; text: string } | { source: ChangeSource; error: string };

export interface DeploymentWatcherOptions {
  file: string;
  onChange(event: DeploymentFileEvent): void;
  /** Quiet time after the last directory event before reading (ms); kubelet's swap is several events. */
  debounceMs?: number;
  /** Read this often whatever the watch says (ms); 0: never. */
  pollMs?: number;
}

export class DeploymentWatcher {
  readonly #file: string;
  readonly #onChange: DeploymentWatcherOptions['onChange'];
  readonly #debounceMs: number;
  readonly #pollMs: number;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #last: string | undefined;
  #lastError: string | undefined;
  #closed = false;
  /** Reads done so far (observability, and tests that must know a read happened). */
  reads = 0;

  constructor({ file, onChange, debounceMs = 200, pollMs = 10_000 }: DeploymentWatcherOptions) {
    this.#file = file;
    this.#onChange = onChange;
    this.#debounceMs = debounceMs;
    this.#pollMs = pollMs;
  }

  /** Reads the file now (throws CONFIG_INVALID naming it if it cannot) and starts watching. */
  start(): string {
    const text = this.#read();
    if (typeof text !== 'string') throw new ScorerError('CONFIG_INVALID', `MODEL_DEPLOYMENT: cannot read ${this.#file}: ${text.error}`);
    this.#last = text;
    this.#arm();
    if (this.#pollMs > 0) {
      this.#poll = setInterval(() => this.#check('poll', false), this.#pollMs);
      this.#poll.unref();
    }
    return text;
  }

  /** Reads now and reports the text even if unchanged (SIGHUP). */
  reload(): void {
    this.#check('signal', true);
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
  }

  /** (Re)starts the directory watch; if the directory is gone, the poll re-arms it later. */
  #arm(): void {
    if (this.#watcher !== undefined || this.#closed) return;
    try {
      const w = watch(dirname(this.#file), { persistent: false }, () => this.#schedule());
      w.on('error', () => {
        w.close();
        if (this.#watcher === w) this.#watcher = undefined;
      });
      this.#watcher = w;
    } catch {
      this.#watcher = undefined;
    }
  }

  #schedule(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#check('watch', false), this.#debounceMs);
    this.#debounce.unref();
  }

  #check(source: ChangeSource, force: boolean): void {
    if (this.#closed) return;
    this.#arm();
    const text = this.#read();
    if (typeof text !== 'string') {
      // Reported once per distinct error, not on every poll while the file stays missing.
      if (force || text.error !== this.#lastError) this.#onChange({ source, error: text.error });
      this.#lastError = text.error;
      return;
    }
    this.#lastError = undefined;
    if (!force && text === this.#last) return;
    this.#last = text;
    this.#onChange({ source, text });
  }

  #read(): string | { error: string } {
    this.reads++;
    try {
      return readFileSync(this.#file, 'utf8');
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
}
