/**
 * Just enough of the Prometheus text format for the benchmark: samples by name and labels, and
 * histograms as (upper bound, cumulative count) pairs, diffable between two scrapes so a phase
 * can be read on its own.
 */

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export type Scrape = Map<string, Sample[]>;

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseProm(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = l[2] as string;
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
    const list = out.get(m[1] as string) ?? [];
    list.push({ labels, value });
    out.set(m[1] as string, list);
  }
  return out;
}

/** Sum of every sample of a metric (all label sets); 0 when absent. */
export function total(s: Scrape, name: string): number {
  return (s.get(name) ?? []).reduce((a, x) => a + x.value, 0);
}

export interface Histogram {
  /** Upper bounds, ascending, last is +Inf. */
  le: number[];
  /** Cumulative counts per bound. */
  cumulative: number[];
  count: number;
  sum: number;
}

/** A histogram summed over label sets (our histograms have at most one: the model). */
export function histogram(s: Scrape, name: string): Histogram {
  const byLe = new Map<number, number>();
  for (const { labels, value } of s.get(`${name}_bucket`) ?? []) {
    const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + value);
  }
  const le = [...byLe.keys()].sort((a, b) => a - b);
  return { le, cumulative: le.map((b) => byLe.get(b) ?? 0), count: total(s, `${name}_count`), sum: total(s, `${name}_sum`) };
}

/** after - before, bucket by bucket (the observations made between two scrapes). */
export function diff(after: Histogram, before: Histogram | undefined): Histogram {
  if (before === undefined) return after;
  return {
    le: after.le,
    cumulative: after.cumulative.map((c, i) => c - (before.cumulative[i] ?? 0)),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  };
}

/** Quantile estimated as Prometheus' histogram_quantile does (linear inside the bucket). */
export function quantile(h: Histogram, q: number): number | undefined {
  const n = h.count;
  if (n === 0) return undefined;
  const rank = q * n;
  for (let i = 0; i < h.le.length; i++) {
    const c = h.cumulative[i] as number;
    if (c >= rank) {
      const upper = h.le[i] as number;
      const lower = i === 0 ? 0 : (h.le[i - 1] as number);
      if (!Number.isFinite(upper)) return lower;
      const below = i === 0 ? 0 : (h.cumulative[i - 1] as number);
      return lower + ((upper - lower) * (rank - below)) / Math.max(1, c - below);
    }
  }
  return h.le.at(-2);
}

/** Non-cumulative share of observations per bucket, keyed by the bucket's upper bound, empty buckets left out. */
export function shares(h: Histogram): Record<string, number> {
  const out: Record<string, number> = {};
  h.le.forEach((le, i) => {
    const n = (h.cumulative[i] as number) - (i === 0 ? 0 : (h.cumulative[i - 1] as number));
    if (n > 0) out[Number.isFinite(le) ? `<=${le}` : '+Inf'] = Math.round((n / Math.max(1, h.count)) * 1000) / 1000;
  });
  return out;
}
