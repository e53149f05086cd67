/**
 * The OTEL_* variables: tracing is off unless an endpoint or an exporter is named, and every value
 * the SDK would silently replace by a default is refused at boot, naming the variable.
 */
import { describe, expect, it } from 'vitest';
import { readTracingConfig } from '../../../src/config/otel.js';

function read(env: NodeJS.ProcessEnv): { config: ReturnType<typeof readTracingConfig>; problems: string[] } {
  const problems: string[] = [];
  return { config: readTracingConfig(env, problems), problems };
}

describe('OTEL_* configuration', () => {
  it('is off by default, and with an empty value (the spec: empty = unset)', () => {
    expect(read({})).toEqual({ config: { exporters: [], protocol: 'http/protobuf', maxLinks: 128 }, problems: [] });
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_TRACES_EXPORTER: ' ' }).config.exporters).toEqual([]);
  });

  it('is on with an OTLP endpoint (either one) or a named exporter; none and OTEL_SDK_DISABLED turn it off', () => {
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).config.exporters).toEqual(['otlp']);
    expect(read({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector:4318/v1/traces' }).config.exporters).toEqual(['otlp']);
    expect(read({ OTEL_TRACES_EXPORTER: 'console' }).config.exporters).toEqual(['console']);
    expect(read({ OTEL_TRACES_EXPORTER: 'OTLP, console,otlp' }).config.exporters).toEqual(['otlp', 'console']);
    expect(read({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).config.exporters).toEqual([]);
    expect(read({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }).config.exporters).toEqual([]);
  });

  it('takes the traces protocol over the general one, and the link bound from OTEL_SPAN_LINK_COUNT_LIMIT', () => {
    expect(read({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).config.protocol).toBe('http/json');
    expect(read({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }).config.protocol).toBe('http/protobuf');
    expect(read({ OTEL_SPAN_LINK_COUNT_LIMIT: '16' }).config.maxLinks).toBe(16);
  });

  it('refuses what the SDK would replace by a default, each problem naming its variable', () => {
    expect(
      read({
        OTEL_TRACES_EXPORTER: 'jaeger',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_TRACES_SAMPLER: 'ratio',
        OTEL_TRACES_SAMPLER_ARG: '1.5',
        OTEL_SPAN_LINK_COUNT_LIMIT: '-1',
        OTEL_BSP_SCHEDULE_DELAY: '5s',
        OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd',
        OTEL_SDK_DISABLED: 'maybe',
      }).problems,
    ).toEqual([
      "OTEL_SDK_DISABLED: expected a boolean (true/false/1/0/yes/no), got 'maybe'",
      "OTEL_TRACES_EXPORTER: expected a comma-separated list of otlp|console, or 'none', got 'jaeger'",
      "OTEL_EXPORTER_OTLP_ENDPOINT: expected an http or https URL, got 'collector:4318'",
      "OTEL_EXPORTER_OTLP_PROTOCOL: expected one of http/protobuf|http/json (grpc is not bundled), got 'grpc'",
      "OTEL_EXPORTER_OTLP_COMPRESSION: expected one of gzip|none, got 'zstd'",
      "OTEL_TRACES_SAMPLER: expected one of always_on|always_off|traceidratio|parentbased_always_on|parentbased_always_off|parentbased_traceidratio, got 'ratio'",
      "OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1, got '1.5'",
      "OTEL_SPAN_LINK_COUNT_LIMIT: expected an integer from 0 to 10000, got '-1'",
      "OTEL_BSP_SCHEDULE_DELAY: expected an integer from 0 to 3600000, got '5s'",
    ]);
    expect(read({ OTEL_TRACES_EXPORTER: 'none,otlp' }).problems).toHaveLength(1);
    expect(read({ OTEL_TRACES_SAMPLER_ARG: '0.25' }).problems).toEqual([]);
    expect(read({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4096' }).problems).toEqual(["OTEL_BSP_MAX_EXPORT_BATCH_SIZE: expected at most OTEL_BSP_MAX_QUEUE_SIZE (2048), got '4096'"]);
  });
});
