/** The benchmark's Markdown report: one summary table, the targets, then per-model details. */
import type { ScenarioResult } from './scenario.js';

interface Report {
  command: string;
  startedAt: string;
  machine: Record<string, unknown> & { cpus: number; cpuModel: string; loadAvgAtStart: number[]; loadAvgAtEnd: number[] };
  results: ScenarioResult[];
}

const n = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
const ms = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : String(Math.round(x)));
/** Committed transactions' p50/p99 from the scorer's histogram (empty for a build without it). */
const txMs = (h: { count: number; p50: number | null; p99: number | null }): string => (h.count === 0 ? '' : ` (p50/p99 ${h.p50 ?? '-'}/${h.p99 ?? '-'} ms each)`);
const check = (ok: boolean | undefined): string => (ok === undefined ? '?' : ok ? 'met' : 'MISSED');

const TARGETS = { churnEventsPerSec: 20_000, p99Ms: 250, steadyRssMb: 300, mlpShareOfRaw: 0.5 };

export function formatReport(r: Report): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`## kafka-onnx-scorer benchmark, ${r.startedAt}`);
  out.push('');
  out.push(`\`${r.command}\` on ${m.cpus} x ${m.cpuModel}, ${String(m.totalMemMb)} MB, ${String(m.os)}, node ${String(m.node)}, onnxruntime-node ${String(m.onnxruntimeNode)}, kafkajs ${String(m.kafkajs)}, Kafka ${String(m.kafka)}, Apicurio ${String(m.apicurioRegistry)}; load average ${m.loadAvgAtStart.join(' ')} at start, ${m.loadAvgAtEnd.join(' ')} at end.`);
  out.push('');
  out.push('| model | scorer config | raw @ cfg batch (rows/s) | raw best (batch) | backlog e2e (events/s) | steady 10-90% | e2e / raw best | live rate | p50 / p95 / p99 ms | mean batch backlog / live | infer ms/batch p50 | RSS steady / peak MB | scorer cores (main thread) | SIGTERM | exactly once |');
  out.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |');
  for (const s of r.results) {
    const t = s.throughput;
    const l = s.latency;
    const cfg = Object.entries(s.env).map(([k, v]) => `${k.replace(/^INFER_|^BATCH_/, '')}=${v}`).join(' ');
    const share = t === undefined ? undefined : t.eventsPerSec / s.rawBest.rowsPerSec;
    out.push(
      `| ${s.model} | ${cfg} | ${n(s.rawAtConfigured.rowsPerSec)} @${s.rawAtConfigured.batch} | ${n(s.rawBest.rowsPerSec)} (${s.rawBest.batch}) | ${n(t?.eventsPerSec)} | ${n(t?.steadyEventsPerSec10to90)} | ${share === undefined ? '-' : `${Math.round(share * 100)}%`} | ${n(l?.achievedProduceRate)} | ${ms(l?.visibleMinusEventMs.p50)} / ${ms(l?.visibleMinusEventMs.p95)} / ${ms(l?.visibleMinusEventMs.p99)} | ${t?.metrics.batchSizeRows.mean ?? '-'} / ${l?.metrics.batchSizeRows.mean ?? '-'} | ${t?.metrics.inferenceMs.p50 ?? '-'} | ${n(s.rss?.steadyMedianMb)} / ${n(s.rss?.peakHwmMb)} | ${t?.cpu.scorerCores ?? '-'} (${t?.cpu.scorerMainThreadCores ?? '-'}) | ${s.shutdown === undefined ? '-' : `exit ${s.shutdown.exitCode} in ${s.shutdown.ms} ms`} | ${s.output === undefined ? '-' : s.output.ok ? `yes (${n(s.output.records)})` : `NO: ${s.output.records}/${s.output.expected}, ${s.output.duplicates} dup`} |`,
    );
  }
  out.push('');
  out.push('Targets (goals, not assertions):');
  const churn = r.results.find((s) => s.model === 'churn');
  const mlp = r.results.find((s) => s.model === 'mlp');
  if (churn?.throughput !== undefined) out.push(`- churn >= ${n(TARGETS.churnEventsPerSec)} events/s end to end: ${n(churn.throughput.eventsPerSec)} -> ${check(churn.throughput.eventsPerSec >= TARGETS.churnEventsPerSec)}`);
  if (churn?.latency !== undefined) out.push(`- churn p99 <= ${TARGETS.p99Ms} ms at half that rate: ${ms(churn.latency.visibleMinusEventMs.p99)} ms -> ${check((churn.latency.visibleMinusEventMs.p99 ?? Infinity) <= TARGETS.p99Ms)}`);
  for (const s of r.results) if (s.rss !== undefined) out.push(`- ${s.model} steady RSS <= ${TARGETS.steadyRssMb} MB: ${s.rss.steadyMedianMb} MB (peak ${s.rss.peakHwmMb}) -> ${check(s.rss.steadyMedianMb <= TARGETS.steadyRssMb)}`);
  if (mlp?.throughput !== undefined) {
    const share = mlp.throughput.eventsPerSec / mlp.rawBest.rowsPerSec;
    out.push(`- mlp end to end >= 50% of raw at its best batch (${n(mlp.rawBest.rowsPerSec)} @${mlp.rawBest.batch}): ${Math.round(share * 100)}% -> ${check(share >= TARGETS.mlpShareOfRaw)}`);
  }
  for (const s of r.results) {
    out.push('');
    out.push(`### ${s.model}${s.error === undefined ? '' : ` (FAILED: ${s.error})`}`);
    out.push(`- raw session.run: ${s.raw.map((p) => `${p.batch}: ${n(p.rowsPerSec)} rows/s (${p.msPerCall} ms)`).join(', ')}`);
    if (s.preload !== undefined) out.push(`- preload: ${n(s.preload.sent)} events in ${s.preload.seconds} s (${n(s.preload.eventsPerSec)}/s)`);
    const t = s.throughput;
    if (t !== undefined) {
      out.push(`- backlog: ${n(t.events)} events in ${t.seconds} s; ready ${t.readyMs} ms after spawn, first consumed +${t.readyToFirstConsumedMs} ms; ${n(t.metrics.transactions)} transactions`);
      out.push(`- backlog batch sizes (rows, share of batches): ${JSON.stringify(t.metrics.batchSizeRows.shares)}; inference ms/batch mean ${t.metrics.inferenceMs.mean} p95 ${t.metrics.inferenceMs.p95}`);
      out.push(`- backlog CPU per event: scorer ${t.scorerCpuUsPerEvent} µs, of which main thread ${t.mainThreadCpuUsPerEvent} µs`);
      out.push(`- backlog CPU (cores over ${t.cpu.wallSeconds} s): machine ${t.cpu.machineBusyCores}/${t.cpu.machineCores} busy; scorer ${t.cpu.scorerCores} ${JSON.stringify(t.cpu.scorerThreadsByName)}; broker ${t.cpu.brokerCores}; registry ${t.cpu.registryCores}; bench ${t.cpu.benchCores}; other processes ${t.cpu.otherCores}; stolen by the hypervisor ${t.cpu.stealCores}`);
    }
    const l = s.latency;
    if (l !== undefined) {
      out.push(`- live: ${n(l.produced)} events at ${n(l.achievedProduceRate)}/s (target ${n(l.targetRate)}; event_time by ${l.eventTime}), ${n(l.received)} seen; event->visible p50/p95/p99/max ${ms(l.visibleMinusEventMs.p50)}/${ms(l.visibleMinusEventMs.p95)}/${ms(l.visibleMinusEventMs.p99)}/${ms(l.visibleMinusEventMs.max)} ms; of which event->scored_time p50/p99 ${ms(l.scoredMinusEventMs.p50)}/${ms(l.scoredMinusEventMs.p99)}, scored_time->visible p50/p99 ${ms(l.visibleMinusScoredMs.p50)}/${ms(l.visibleMinusScoredMs.p99)}`);
      out.push(`- live event->visible p99 by second: ${l.visibleMinusEventP99BySecondMs.map((v) => (v === null ? '-' : String(v))).join(' ')} ms`);
      out.push(`- live batch sizes: ${JSON.stringify(l.metrics.batchSizeRows.shares)}; inference ms/batch mean ${l.metrics.inferenceMs.mean}, fill wait p95 ${l.metrics.batchFillWaitMs.p95} ms; ${l.metrics.transactions} transactions${txMs(l.metrics.transactionMs)}; CPU cores: machine ${l.cpu.machineBusyCores}/${l.cpu.machineCores} busy; scorer ${l.cpu.scorerCores} (main thread ${l.cpu.scorerMainThreadCores}); broker ${l.cpu.brokerCores}; bench (load generator + reader) ${l.cpu.benchCores}; other processes ${l.cpu.otherCores}; stolen by the hypervisor ${l.cpu.stealCores}`);
    }
    if (s.rss !== undefined) out.push(`- RSS: steady (live phase median) ${s.rss.steadyMedianMb} MB, max ${s.rss.steadyMaxMb} MB; peak (VmHWM) ${s.rss.peakHwmMb} MB; backlog max sampled ${t?.maxRssMb ?? '-'} MB`);
    if (s.output !== undefined) out.push(`- output: ${n(s.output.records)}/${n(s.output.expected)} scored events, ${s.output.duplicates} duplicates, ${s.output.deadLettered} dead letters; backlog scored_time span ${s.output.backlogScoredTimeSpanMs} ms`);
  }
  return out.join('\n');
}
