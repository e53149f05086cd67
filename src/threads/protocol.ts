/**
 * What the supervisor (main thread) and a pipeline thread say to each other over the worker's
 * port. Requests carry an id the reply repeats; events are the pipeline's own news.
 */
import type { Config } from '../config.js';
import { type ErrorCode, ScorerError } from '../errors.js';
import type { HealthState } from '../ops/http.js';
import type { PartitionProgress } from '../stages/consume.js';
import type { MetricsJson } from './merge.js';

export const PIPELINE_ROLE = 'kafka-onnx-scorer/pipeline';

export interface PipelineInit {
  role: typeof PIPELINE_ROLE;
  /** 0-based, in log lines as `pipeline`. */
  index: number;
  config: Config;
}

export type Request =
  | { id: number; type: 'metrics' }
  | { id: number; type: 'health' }
  | { id: number; type: 'progress'; partitions: number[] }
  | { id: number; type: 'stop'; deadlineMs: number }
  | { id: number; type: 'reload' }
  | { id: number; type: 'models' };

/** Replies, by request type. */
export interface Replies {
  /** prom-client's getMetricsAsJSON(), the input of AggregatorRegistry.aggregate. */
  metrics: MetricsJson;
  health: HealthState;
  progress: [number, PartitionProgress][];
  /** true: drained and closed within the deadline. */
  stop: boolean;
  /** SIGHUP forwarded (signals reach the main thread only): false when there is no MODEL_DEPLOYMENT. */
  reload: boolean;
  /** GET /models: the pipeline's model-set snapshot. */
  models: unknown;
}

/** An error as it crosses the port: our code survives, so exit codes and log lines stay the same. */
export interface WireError {
  code?: ErrorCode;
  message: string;
  cause?: string;
}

export type PipelineEvent =
  | { type: 'started' }
  | { type: 'start-failed'; error: WireError }
  | { type: 'crashed'; error: WireError }
  | { type: 'reply'; id: number; value: unknown }
  | { type: 'reply-error'; id: number; error: WireError };

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { message: String(err) };
  return {
    ...(err instanceof ScorerError && { code: err.code }),
    message: err.message,
    ...(err.cause instanceof Error && { cause: err.cause.message }),
  };
}

/** The error again on this side: a ScorerError keeps its code (main.ts picks the exit code by it). */
export function fromWire(e: WireError): Error {
  const options = e.cause === undefined ? undefined : { cause: new Error(e.cause) };
  return e.code === undefined ? new Error(e.message, options) : new ScorerError(e.code, e.message, options);
}
