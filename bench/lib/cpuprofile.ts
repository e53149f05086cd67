/**
 * Summarises a V8 .cpuprofile (what `node --cpu-prof` writes): self time per function, the same
 * grouped by where the code lives (a package under node_modules, Node's internals, the scorer's
 * own dist/ files, GC), and inclusive time of the scorer's own functions (stage attribution).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Entry {
  name: string;
  ms: number;
  /** Share of the non-idle time. */
  pct: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  /** Sampled time not spent idle (waiting in epoll). */
  busyMs: number;
  idlePct: number;
  topSelf: Entry[];
  byCategory: Entry[];
  /** Scorer (dist/, src/) functions by inclusive time: the stage they run and everything they call. */
  ownInclusive: Entry[];
}

const shortUrl = (url: string): string => url.replace(/^file:\/\/.*?\/(node_modules|dist|src|bench|scripts)\//, '$1/').replace(/^node:/, 'node:');

function category(f: CallFrame): string {
  const { url, functionName } = f;
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle), (root)
    return '(native / builtins)';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg !== undefined) return pkg;
  if (url.startsWith('node:')) return 'node: internals';
  const own = /\/(dist|src)\/([^/]+)\.[jt]s$/.exec(url);
  if (own !== null) return `scorer ${own[2]}`;
  return shortUrl(url);
}

const keyOf = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;

const round = (x: number): number => Math.round(x * 10) / 10;

export function summarizeProfile(file: string, top = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Time of sample i: the delta to the next sample (the last one gets the mean).
  const n = p.samples.length;
  const mean = n > 0 ? (p.endTime - p.startTime) / n : 0;
  const dt = (i: number): number => (i + 1 < n ? (p.timeDeltas[i + 1] as number) : mean) / 1000;

  const self = new Map<string, number>();
  const cat = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (let i = 0; i < n; i++) {
    const node = byId.get(p.samples[i] as number);
    if (node === undefined) continue;
    const ms = dt(i);
    if (node.callFrame.functionName === '(idle)') {
      idle += ms;
      continue;
    }
    busy += ms;
    const k = keyOf(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + ms);
    const c = category(node.callFrame);
    cat.set(c, (cat.get(c) ?? 0) + ms);
    // Inclusive: each own function once per sample, however deep the recursion.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)?.callFrame;
      if (f === undefined || !/\/(dist|src)\/[^/]+\.[jt]s$/.test(f.url)) continue;
      const fk = keyOf(f);
      if (!seen.has(fk)) {
        seen.add(fk);
        inclusive.set(fk, (inclusive.get(fk) ?? 0) + ms);
      }
    }
  }
  const entries = (m: Map<string, number>, limit: number): Entry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), pct: round((100 * ms) / Math.max(1, busy)) }));
  return {
    file,
    wallMs: Math.round((p.endTime - p.startTime) / 1000),
    busyMs: Math.round(busy),
    idlePct: round((100 * idle) / Math.max(1, idle + busy)),
    topSelf: entries(self, top),
    byCategory: entries(cat, 15),
    ownInclusive: entries(inclusive, top),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`${s.file}: ${s.wallMs} ms wall, ${s.busyMs} ms busy (${s.idlePct}% idle)`];
  const table = (title: string, rows: Entry[]) => {
    lines.push(`  ${title}`);
    for (const r of rows) lines.push(`    ${String(r.pct).padStart(5)}%  ${String(r.ms).padStart(7)} ms  ${r.name}`);
  };
  table('self time by category (% of busy):', s.byCategory);
  table('top functions by self time:', s.topSelf);
  table('scorer functions by inclusive time:', s.ownInclusive.slice(0, 12));
  return lines.join('\n');
}
