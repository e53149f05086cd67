/**
 * The deployment file (`MODEL_DEPLOYMENT=<file>`, JSON): which repository versions serve, in
 * which role, with how much traffic.
 *
 *   { "stable": "1.0.0",
 *     "canary": { "version": "1.1.0", "percent": 10,
 *                 "guard": { "maxFailureRate": 0.01, "maxP99Ratio": 2.0, "minRows": 5000,
 *                            "promote": [25, 50, 100], "promoteAfterRows": 20000 } },
 *     "shadow": { "version": "1.2.0", "topic": "scores-shadow", "percent": 100 } }
 *
 * Validated whole, every problem named by its field (`canary.percent: expected a number from 0
 * to 100, got 120`), against the versions the repository has. At start an invalid file stops the
 * process (CONFIG_INVALID, exit 2); at run time it is a refused change (model-set.ts).
 */
import { createHash } from 'node:crypto';
import { ScorerError } from '../errors.js';

export interface GuardPolicy {
  /** Canary rows failed / rows scored above this: rollback. 0..1. */
  maxFailureRate: number;
  /** Canary p99 batch inference time / stable's above this: rollback. >= 1. */
  maxP99Ratio: number;
  /** Canary rows scored (at the current step) before the guard judges. */
  minRows: number;
  /** Percents to step through while healthy, increasing; 100 makes the canary stable. */
  promote: number[];
  /** Healthy canary rows at one step before the next step. */
  promoteAfterRows: number;
}

export interface CanarySpec {
  version: string;
  /** Share of keys, 0..100 (precision: any number; routing.ts compares a 32-bit hash). */
  percent: number;
  guard?: GuardPolicy;
}

export interface ShadowSpec {
  version: string;
  /** Where the shadow's scored events go, in the same transaction as the main output. */
  topic: string;
  /** Share of keys shadow-scored, 0..100; default 100. */
  percent: number;
}

export interface Deployment {
  stable: string;
  canary?: CanarySpec;
  shadow?: ShadowSpec;
}

/** What an absent guard field means. */
export const GUARD_DEFAULTS: GuardPolicy = { maxFailureRate: 0.01, maxP99Ratio: 2, minRows: 5000, promote: [], promoteAfterRows: 20000 };

export interface DeploymentContext {
  /** The file, for messages. */
  file: string;
  /** The repository's versions (repository.ts scan). */
  versions: readonly string[];
  /** Topics a shadow must not write to (input, output, dead letters). */
  reservedTopics?: readonly string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const got = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
/** JSON null, like a missing field, means "none" (`"canary": null` removes the canary). */
const absent = (v: unknown): v is null | undefined => v === undefined || v === null;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
// Kafka's rule for topic names, as in config.ts.
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;

/** Collects problems while reading one object; each field read once. */
class Reader {
  readonly problems: string[] = [];
  constructor(readonly ctx: DeploymentContext) {}

  object(v: unknown, at: string, fields: readonly string[]): Obj | undefined {
    if (!isObj(v)) {
      this.problems.push(`${at}: expected an object, got ${got(v)}`);
      return undefined;
    }
    for (const k of Object.keys(v)) if (!fields.includes(k)) this.problems.push(`${at === '' ? '' : `${at}.`}${k}: unknown field (expected ${fields.join(', ')})`);
    return v;
  }

  version(v: unknown, at: string, taken: Record<string, string | undefined>): string | undefined {
    const { versions } = this.ctx;
    if (typeof v !== 'string' || v.length === 0) return this.fail(`${at}: expected a version of the repository (${versions.join(', ')}), got ${got(v)}`);
    if (!versions.includes(v)) return this.fail(`${at}: no version "${v}" in the repository (it has ${versions.join(', ')})`);
    for (const [role, version] of Object.entries(taken)) if (version === v) return this.fail(`${at}: "${v}" is already the ${role} version; each role needs its own`);
    return v;
  }

  number(v: unknown, at: string, min: number, max: number, fallback?: number): number | undefined {
    if (v === undefined && fallback !== undefined) return fallback;
    if (!isNum(v) || v < min || v > max) return this.fail(`${at}: expected a number ${max === Infinity ? `>= ${min}` : `from ${min} to ${max}`}, got ${got(v)}`);
    return v;
  }

  integer(v: unknown, at: string, min: number, fallback: number): number | undefined {
    if (v === undefined) return fallback;
    if (!Number.isSafeInteger(v) || (v as number) < min) return this.fail(`${at}: expected an integer >= ${min}, got ${got(v)}`);
    return v as number;
  }

  fail(problem: string): undefined {
    this.problems.push(problem);
    return undefined;
  }
}

function readGuard(r: Reader, raw: unknown, percent: number | undefined): GuardPolicy | undefined {
  const at = 'canary.guard';
  const g = r.object(raw, at, ['maxFailureRate', 'maxP99Ratio', 'minRows', 'promote', 'promoteAfterRows']);
  if (g === undefined) return undefined;
  const maxFailureRate = r.number(g.maxFailureRate, `${at}.maxFailureRate`, 0, 1, GUARD_DEFAULTS.maxFailureRate);
  const maxP99Ratio = r.number(g.maxP99Ratio, `${at}.maxP99Ratio`, 1, Infinity, GUARD_DEFAULTS.maxP99Ratio);
  const minRows = r.integer(g.minRows, `${at}.minRows`, 1, GUARD_DEFAULTS.minRows);
  const promoteAfterRows = r.integer(g.promoteAfterRows, `${at}.promoteAfterRows`, 1, GUARD_DEFAULTS.promoteAfterRows);
  let promote: number[] | undefined = [...GUARD_DEFAULTS.promote];
  if (g.promote !== undefined) {
    const steps = g.promote;
    const from = percent ?? 0;
    const ok = Array.isArray(steps) && steps.every((s, i) => isNum(s) && s > (i === 0 ? from : (steps[i - 1] as number)) && s <= 100);
    promote = ok ? (steps as number[]) : r.fail(`${at}.promote: expected increasing percents above canary.percent (${from}), at most 100, got ${got(steps)}`);
  }
  if (maxFailureRate === undefined || maxP99Ratio === undefined || minRows === undefined || promoteAfterRows === undefined || promote === undefined) return undefined;
  return { maxFailureRate, maxP99Ratio, minRows, promote, promoteAfterRows };
}

function readCanary(r: Reader, raw: unknown, stable: string | undefined): CanarySpec | undefined {
  const c = r.object(raw, 'canary', ['version', 'percent', 'guard']);
  if (c === undefined) return undefined;
  const version = r.version(c.version, 'canary.version', { stable });
  const percent = r.number(c.percent, 'canary.percent', 0, 100);
  const guard = absent(c.guard) ? undefined : readGuard(r, c.guard, percent);
  if (version === undefined || percent === undefined || (!absent(c.guard) && guard === undefined)) return undefined;
  return guard === undefined ? { version, percent } : { version, percent, guard };
}

function readShadow(r: Reader, raw: unknown, stable: string | undefined, canary: string | undefined): ShadowSpec | undefined {
  const s = r.object(raw, 'shadow', ['version', 'topic', 'percent']);
  if (s === undefined) return undefined;
  const version = r.version(s.version, 'shadow.version', { stable, canary });
  const percent = r.number(s.percent, 'shadow.percent', 0, 100, 100);
  let topic: string | undefined;
  if (typeof s.topic !== 'string' || !TOPIC.test(s.topic) || s.topic === '.' || s.topic === '..') r.fail(`shadow.topic: expected a Kafka topic name ([a-zA-Z0-9._-]{1,249}), got ${got(s.topic)}`);
  else if (r.ctx.reservedTopics?.includes(s.topic)) r.fail(`shadow.topic: "${s.topic}" is the scorer's input, output or dead-letter topic; the shadow needs its own`);
  else topic = s.topic;
  if (version === undefined || percent === undefined || topic === undefined) return undefined;
  return { version, topic, percent };
}

/** Parses and validates the file's text; throws CONFIG_INVALID listing every problem. */
export function parseDeployment(text: string, ctx: DeploymentContext): Deployment {
  const fail = (what: string): never => {
    throw new ScorerError('CONFIG_INVALID', `MODEL_DEPLOYMENT: ${ctx.file}: ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(`not valid JSON (${(err as Error).message})`);
  }
  const r = new Reader(ctx);
  const root = r.object(raw, '', ['stable', 'canary', 'shadow']);
  if (root === undefined) return fail(`expected a JSON object like {"stable": "${ctx.versions.at(-1) ?? '1.0.0'}"}, got ${got(raw)}`);
  const stable = r.version(root.stable, 'stable', {});
  const canary = absent(root.canary) ? undefined : readCanary(r, root.canary, stable);
  const canaryVersion = isObj(root.canary) && typeof root.canary.version === 'string' ? root.canary.version : undefined;
  const shadow = absent(root.shadow) ? undefined : readShadow(r, root.shadow, stable, canaryVersion);
  if (r.problems.length > 0 || stable === undefined) fail(r.problems.length === 1 ? (r.problems[0] as string) : `${r.problems.length} problems: ${r.problems.join('; ')}`);
  const d: Deployment = { stable: stable as string };
  if (canary !== undefined) d.canary = canary;
  if (shadow !== undefined) d.shadow = shadow;
  return d;
}

/**
 * Identifies a canary rollout, for the guard's recorded decisions (rollout-store.ts): the same
 * stable, canary version, starting percent and guard policy is the same rollout, whatever else
 * in the file changed (a shadow added keeps the guard's state); any of them changed starts a
 * fresh one. undefined without a canary.
 */
export function canaryKey(d: Deployment): string | undefined {
  if (d.canary === undefined) return undefined;
  const { version, percent, guard } = d.canary;
  const canonical = JSON.stringify([d.stable, version, percent, guard === undefined ? null : [guard.maxFailureRate, guard.maxP99Ratio, guard.minRows, guard.promote, guard.promoteAfterRows]]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}
