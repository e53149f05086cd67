/**
 * promtool and prometheus for the rule tests and the real-Prometheus integration test, from
 * Debian's `prometheus` package: `apt-get download` fetches the .deb (no root needed once the apt
 * lists exist) and only its two binaries are unpacked into ~/.cache/kafka-onnx-scorer/prometheus/,
 * so nothing is installed system-wide and no service is started. Idempotent: when the binaries are
 * there and run, it returns at once (~50 ms). PROMTOOL and PROMETHEUS override the binaries (any
 * Prometheus >= 2.42, e.g. on a machine without apt).
 *
 *   npx tsx scripts/prometheus-tools.ts        # install if missing, print the paths and version
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StackError, run } from './stack/process.js';

export interface PrometheusTools {
  promtool: string;
  prometheus: string;
  /** `promtool --version`'s first line. */
  version: string;
}

const cacheDir = () => join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kafka-onnx-scorer', 'prometheus');

/** The first line of `<bin> --version`, or undefined when it does not run. */
function versionOf(bin: string): string | undefined {
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0];
  } catch {
    return undefined;
  }
}

function found(promtool: string, prometheus: string): PrometheusTools | undefined {
  const version = versionOf(promtool);
  return version !== undefined && versionOf(prometheus) !== undefined ? { promtool, prometheus, version } : undefined;
}

export async function prometheusTools(say: (line: string) => void = () => undefined): Promise<PrometheusTools> {
  const { PROMTOOL, PROMETHEUS } = process.env;
  if (PROMTOOL !== undefined || PROMETHEUS !== undefined) {
    const tools = found(PROMTOOL ?? 'promtool', PROMETHEUS ?? 'prometheus');
    const given = Object.entries({ PROMTOOL, PROMETHEUS }).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    if (tools === undefined) throw new StackError(`${given.join(', ')}: expected runnable promtool and prometheus binaries (\`--version\` failed; unset means the one on PATH)`);
    return tools;
  }
  const bin = join(cacheDir(), 'bin');
  const cached = found(join(bin, 'promtool'), join(bin, 'prometheus'));
  if (cached !== undefined) return cached;

  say(`fetching Debian's prometheus package (promtool + prometheus) into ${cacheDir()}`);
  const work = mkdtempSync(join(tmpdir(), 'kos-prometheus-'));
  try {
    await download(work);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (deb === undefined) throw new StackError(`apt-get download prometheus left no .deb in ${work}`);
    const hint = 'dpkg-deb (package dpkg) unpacks the .deb.';
    await run('dpkg-deb', ['-x', join(work, deb), join(work, 'x')], { cwd: work, what: `unpacking ${deb}`, hint });
    // Lay the result out beside the final place and rename it in: a concurrent run (the unit and
    // integration projects start together) either sees nothing or the whole directory.
    const staged = join(work, 'staged');
    mkdirSync(join(staged, 'bin'), { recursive: true });
    for (const b of ['promtool', 'prometheus']) {
      copyFileSync(join(work, 'x/usr/bin', b), join(staged, 'bin', b));
      chmodSync(join(staged, 'bin', b), 0o755);
    }
    writeFileSync(join(staged, 'SOURCE'), `${deb}\n`);
    mkdirSync(join(cacheDir(), '..'), { recursive: true });
    if (found(join(bin, 'promtool'), join(bin, 'prometheus')) === undefined) {
      rmSync(cacheDir(), { recursive: true, force: true }); // a broken leftover, not another run's result
      try {
        renameSync(staged, cacheDir());
      } catch (err) {
        if (found(join(bin, 'promtool'), join(bin, 'prometheus')) === undefined) throw err; // not a lost race
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const tools = found(join(bin, 'promtool'), join(bin, 'prometheus'));
  if (tools === undefined) throw new StackError(`${bin}/promtool does not run after unpacking Debian's prometheus package`);
  say(`installed ${tools.version}`);
  return tools;
}

/** apt-get download, refreshing the package lists once (as root) when they do not know the package yet. */
async function download(cwd: string): Promise<void> {
  const hint =
    'promtool comes from Debian\'s `prometheus` package via apt-get (run `apt-get update` as root if the package lists are empty); elsewhere, install Prometheus >= 2.42 and set PROMTOOL and PROMETHEUS to its binaries.';
  const get = () => run('apt-get', ['download', 'prometheus'], { cwd, what: 'apt-get download prometheus', hint });
  try {
    await get();
  } catch (err) {
    const root = process.getuid?.() === 0;
    if (!root || !(err instanceof StackError) || /not on PATH/.test(err.message)) throw err;
    await run('apt-get', ['update', '-qq'], { cwd, what: 'apt-get update', hint });
    await get();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  prometheusTools(console.log).then(
    (t) => console.log(`${t.version}\npromtool:   ${t.promtool}\nprometheus: ${t.prometheus}`),
    (err: unknown) => {
      console.error(err instanceof StackError ? err.message : err);
      process.exit(1);
    },
  );
}
