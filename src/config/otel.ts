/**
 * The OpenTelemetry variables checked at boot. They keep the SDK's standard names and, like every
 * OTel SDK, come from the environment only (not CONFIG_FILE): the SDK reads them again itself, with
 * the ones not checked here (OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES…).
 * Checking them matters because the SDK answers a bad value with a default and a diag line nobody
 * reads (e.g. OTEL_TRACES_SAMPLER=ratio samples everything); here it is exit 2 naming the variable.
 * Spec: https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/
 */
import { type Io, type Parser, bool, httpUrl, int, oneOf } from './parsers.js';
import { quote } from './redact.js';

export type TraceExporterKind = 'otlp' | 'console';
export type OtlpProtocol = 'http/protobuf' | 'http/json';

export interface TracingConfig {
  /** Where spans go; empty = tracing off (the default): no SDK is started, the hooks are no-ops. */
  exporters: TraceExporterKind[];
  /** OTLP encoding, from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL. */
  protocol: OtlpProtocol;
  /** Links to input contexts per transaction span at most (OTEL_SPAN_LINK_COUNT_LIMIT; the SDK's default, 128). */
  maxLinks: number;
}

const EXPORTERS: Parser<(TraceExporterKind | 'none')[]> = {
  expected: "a comma-separated list of otlp|console, or 'none'",
  parse: (raw) => {
    const list = raw.split(',').map((s) => s.trim().toLowerCase());
    const ok = list.every((x) => x === 'otlp' || x === 'console' || x === 'none') && (!list.includes('none') || list.length === 1);
    return ok ? (list as (TraceExporterKind | 'none')[]) : undefined;
  },
};
// grpc would need @grpc/grpc-js; every collector also takes OTLP over HTTP (port 4318).
const PROTOCOL = { ...oneOf(['http/protobuf', 'http/json'] as const), expected: 'one of http/protobuf|http/json (grpc is not bundled)' };
const RATIO: Parser<number> = {
  expected: 'a number from 0 to 1',
  parse: (raw) => {
    const n = /^(\d+\.?\d*|\.\d+)$/.test(raw) ? Number(raw) : NaN;
    return n >= 0 && n <= 1 ? n : undefined;
  },
};
const MS = int(0, 3_600_000);
// None of these parsers reads a file.
const NO_FILES: Io = { readFile: () => '', isFile: () => false, isDirectory: () => false };

/** One row per checked variable; the values the scorer itself needs are typed below. */
const OTEL_SCHEMA = {
  OTEL_SDK_DISABLED: bool,
  OTEL_TRACES_EXPORTER: EXPORTERS,
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_PROTOCOL: PROTOCOL,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: PROTOCOL,
  OTEL_EXPORTER_OTLP_COMPRESSION: oneOf(['gzip', 'none'] as const),
  OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: oneOf(['gzip', 'none'] as const),
  OTEL_EXPORTER_OTLP_TIMEOUT: MS,
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: MS,
  // jaeger_remote and xray need their own packages.
  OTEL_TRACES_SAMPLER: oneOf(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const),
  OTEL_TRACES_SAMPLER_ARG: RATIO,
  OTEL_SPAN_LINK_COUNT_LIMIT: int(0, 10_000),
  OTEL_BSP_SCHEDULE_DELAY: MS,
  OTEL_BSP_EXPORT_TIMEOUT: MS,
  OTEL_BSP_MAX_QUEUE_SIZE: int(1, 1_000_000),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: int(1, 1_000_000),
};
type OtelKey = keyof typeof OTEL_SCHEMA;

/** The OpenTelemetry variables the scorer checks. */
export const OTEL_KEYS: readonly string[] = Object.freeze(Object.keys(OTEL_SCHEMA));

/** The tracing configuration; pushes "NAME: expected …, got …" onto problems for each bad variable. */
export function readTracingConfig(env: NodeJS.ProcessEnv, problems: string[]): TracingConfig {
  const v: { [K in OtelKey]?: unknown } = {};
  for (const k of Object.keys(OTEL_SCHEMA) as OtelKey[]) {
    const raw = env[k];
    // The spec: an empty value is the same as unset.
    if (raw === undefined || raw.trim() === '') continue;
    const parser: Parser<unknown> = OTEL_SCHEMA[k];
    v[k] = parser.parse(raw.trim(), NO_FILES);
    if (v[k] === undefined) problems.push(`${k}: expected ${parser.expected}, got ${quote(raw)}`);
  }
  const maxBatch = v.OTEL_BSP_MAX_EXPORT_BATCH_SIZE as number | undefined;
  const maxQueue = (v.OTEL_BSP_MAX_QUEUE_SIZE as number | undefined) ?? 2048; // the SDK's default
  if (maxBatch !== undefined && maxBatch > maxQueue) problems.push(`OTEL_BSP_MAX_EXPORT_BATCH_SIZE: expected at most OTEL_BSP_MAX_QUEUE_SIZE (${maxQueue}), got ${quote(String(maxBatch))}`);

  const endpointSet = v.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined;
  // Off unless asked for: an endpoint implies otlp; OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true wins.
  const listed = (v.OTEL_TRACES_EXPORTER as (TraceExporterKind | 'none')[] | undefined) ?? (endpointSet ? ['otlp'] : []);
  const exporters = v.OTEL_SDK_DISABLED === true ? [] : listed.filter((x): x is TraceExporterKind => x !== 'none');
  return {
    exporters: [...new Set(exporters)],
    protocol: ((v.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? v.OTEL_EXPORTER_OTLP_PROTOCOL) as OtlpProtocol | undefined) ?? 'http/protobuf',
    maxLinks: (v.OTEL_SPAN_LINK_COUNT_LIMIT as number | undefined) ?? 128,
  };
}
