/**
 * How the pipelines of a PIPELINE_THREADS process add up to one process, as pure functions:
 * their metrics (one /metrics, names and labels unchanged), their health (ready only when every
 * pipeline is) and their partition progress (for the one lag poller).
 */
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { HealthState } from '../ops/http.js';
import type { PartitionProgress } from '../stages/consume.js';

/** One registry's metrics as getMetricsAsJSON() gives them (what crosses a thread's port). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/**
 * One registry from the supervisor's own metrics (Node defaults of the process, the lag gauges)
 * and the pipelines'. Each metric is combined by its `aggregator` (src/ops/metrics.ts: sum unless
 * said otherwise; prom-client's default metrics say average/first/… themselves). `process_*`
 * (CPU, RSS, file descriptors) is one process however many threads read it: the supervisor's
 * figure only, not N copies summed. `nodejs_*` is per thread (heap, GC, event loop): combined.
 */
export function mergeMetrics(own: MetricsJson, pipelines: MetricsJson[]): Registry {
  const isProcess = (m: MetricsJson[number]): boolean => m.name.startsWith('process_');
  const perThread = pipelines.map((ms) => ms.filter((m) => !isProcess(m)));
  // Only one copy of each process_* metric is left; 'first' keeps even the one prom-client marks 'omit' (its start time).
  const mine = own.map((m) => (isProcess(m) ? { ...m, aggregator: 'first' as const } : m));
  // The supervisor's first: AggregatorRegistry takes a metric's aggregator from its first copy.
  return AggregatorRegistry.aggregate([mine, ...perThread]);
}

/** A pipeline's health, or why it gave none (no answer in time, exited). */
export type PipelineHealth = HealthState | string;

/**
 * Live while every pipeline answers live; ready when every pipeline is ready and the process is not
 * shutting down. A check all pipelines agree on keeps its value; one they differ on becomes
 * "pipeline 0: true, pipeline 1: false" (failing, so /readyz lists it).
 */
export function mergeHealth(pipelines: PipelineHealth[], shuttingDown: boolean): HealthState {
  const answered = pipelines.filter((h): h is HealthState => typeof h !== 'string');
  const silent = pipelines.flatMap((h, i) => (typeof h === 'string' ? [`pipeline ${i}: ${h}`] : []));
  const keys = [...new Set(answered.flatMap((h) => Object.keys(h.checks)))];
  const checks: Record<string, boolean | string> = {};
  for (const key of keys) {
    const values = pipelines.map((h) => (typeof h === 'string' ? undefined : h.checks[key]));
    const first = values.find((v) => v !== undefined);
    checks[key] = values.every((v) => v === first) && first !== undefined ? first : values.map((v, i) => `pipeline ${i}: ${String(v)}`).join(', ');
  }
  checks.shuttingDown = shuttingDown || answered.some((h) => h.checks.shuttingDown === true);
  checks.pipelines = silent.length === 0 ? true : silent.join('; ');
  return {
    live: silent.length === 0 && answered.every((h) => h.live),
    ready: pipelines.length > 0 && !shuttingDown && silent.length === 0 && answered.every((h) => h.ready),
    checks,
  };
}

/**
 * A partition is owned by one pipeline at a time, but during a rebalance two may report it: the
 * oldest pending record is the earlier one, and it is paused if either holds it paused.
 */
export function mergeProgress(pipelines: [number, PartitionProgress][][]): Map<number, PartitionProgress> {
  const out = new Map<number, PartitionProgress>();
  for (const list of pipelines) {
    for (const [partition, p] of list) {
      const seen = out.get(partition);
      if (seen === undefined) {
        out.set(partition, { ...p });
        continue;
      }
      const times = [seen.oldestPendingAt, p.oldestPendingAt].filter((t): t is number => t !== undefined);
      out.set(partition, { oldestPendingAt: times.length > 0 ? Math.min(...times) : undefined, paused: seen.paused || p.paused });
    }
  }
  return out;
}
