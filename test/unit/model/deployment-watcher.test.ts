// The deployment file watcher on a real temp dir: a kubelet-style ConfigMap swap (..data symlink
// renamed atomically), a plain edit, an editor's write-and-rename, a deleted file, the SIGHUP
// reload, and the poll that covers what the directory watch cannot see.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type DeploymentFileEvent, DeploymentWatcher } from '../../../src/model/deployment-watcher.js';

const dirs: string[] = [];
const watchers: DeploymentWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'scorer-deploy-'));
  dirs.push(d);
  return d;
}

function watcher(file: string, opts: { pollMs?: number } = {}) {
  const events: DeploymentFileEvent[] = [];
  const w = new DeploymentWatcher({ file, onChange: (e) => events.push(e), debounceMs: 50, pollMs: opts.pollMs ?? 0 });
  watchers.push(w);
  return { w, events, texts: () => events.flatMap((e) => ('text' in e ? [e.text] : [])) };
}

const until = (what: () => boolean) => vi.waitFor(() => expect(what()).toBe(true), { timeout: 5_000, interval: 20 });

/** What kubelet does to a ConfigMap volume: new timestamped dir, ..data_tmp symlink, rename over ..data. */
class ConfigMapVolume {
  #generation = 0;
  constructor(readonly dir: string, text: string) {
    this.#write(text);
    symlinkSync(join('..data', 'deployment.json'), join(dir, 'deployment.json'));
  }

  get file(): string {
    return join(this.dir, 'deployment.json');
  }

  update(text: string): void {
    const old = this.#current();
    this.#write(text);
    rmSync(join(this.dir, old), { recursive: true });
  }

  #current(): string {
    return `..2026_12_01_00_00_0${this.#generation}.000000001`;
  }

  #write(text: string): void {
    this.#generation++;
    const folder = this.#current();
    mkdirSync(join(this.dir, folder));
    writeFileSync(join(this.dir, folder, 'deployment.json'), text);
    symlinkSync(folder, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data')); // atomic: readers see old or new
  }
}

describe('DeploymentWatcher', () => {
  it('follows a ConfigMap volume through successive atomic ..data swaps, once per change', async () => {
    const volume = new ConfigMapVolume(tempDir(), '{"stable":"1.0.0"}');
    const { w, events, texts } = watcher(volume.file);
    expect(w.start()).toBe('{"stable":"1.0.0"}');
    volume.update('{"stable":"1.1.0"}');
    await until(() => texts().includes('{"stable":"1.1.0"}'));
    volume.update('{"stable":"1.0.0"}');
    await until(() => texts().includes('{"stable":"1.0.0"}'));
    expect(texts()).toEqual(['{"stable":"1.1.0"}', '{"stable":"1.0.0"}']); // debounced: one report per swap
    expect(events.every((e) => e.source === 'watch')).toBe(true);
  });

  it('sees a plain edit and an editor write-then-rename', async () => {
    const dir = tempDir();
    const file = join(dir, 'deployment.json');
    writeFileSync(file, 'v1');
    const { w, texts } = watcher(file);
    w.start();
    writeFileSync(file, 'v2');
    await until(() => texts().includes('v2'));
    writeFileSync(join(dir, '.deployment.json.swp'), 'v3');
    renameSync(join(dir, '.deployment.json.swp'), file);
    await until(() => texts().includes('v3'));
    expect(texts()).toEqual(['v2', 'v3']);
  });

  it('does not report a write of the same text; reload() (SIGHUP) reports it anyway', async () => {
    const dir = tempDir();
    const file = join(dir, 'deployment.json');
    writeFileSync(file, 'same');
    const { w, events } = watcher(file);
    w.start();
    const reads = w.reads;
    writeFileSync(file, 'same');
    await until(() => w.reads > reads); // the watch fired and the file was read ...
    expect(events).toEqual([]); // ... and nothing changed
    w.reload();
    expect(events).toEqual([{ source: 'signal', text: 'same' }]);
  });

  it('reports a deleted file once as an error, then the file when it is back', async () => {
    const dir = tempDir();
    const file = join(dir, 'deployment.json');
    writeFileSync(file, 'v1');
    const { w, events } = watcher(file);
    w.start();
    unlinkSync(file);
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ source: 'watch', error: expect.stringContaining('ENOENT') });
    writeFileSync(file, 'v2');
    await until(() => events.length === 2);
    expect(events[1]).toEqual({ source: 'watch', text: 'v2' });
  });

  it('polls for changes the directory watch cannot see (a symlink into another directory)', async () => {
    const real = join(tempDir(), 'real.json');
    const link = join(tempDir(), 'deployment.json');
    writeFileSync(real, 'v1');
    symlinkSync(real, link);
    const { w, events } = watcher(link, { pollMs: 50 });
    w.start();
    writeFileSync(real, 'v2');
    await until(() => events.length === 1);
    expect(events[0]).toEqual({ source: 'poll', text: 'v2' });
  });

  it('refuses to start on a file it cannot read, naming it', () => {
    const file = join(tempDir(), 'missing.json');
    expect(() => watcher(file).w.start()).toThrow(`MODEL_DEPLOYMENT: cannot read ${file}: ENOENT`);
  });
});
