/**
 * The model set: which repository versions serve, in which role, and the switch between
 * deployments — the one owner of loaded versions (their pool: generation.ts).
 *
 * A change (the deployment file, SIGHUP) is validated against the repository, every version it
 * needs is loaded and warmed up off the hot path (prepare.ts), and only then does a new
 * generation take traffic; if anything fails (invalid file, unknown version, load failure,
 * manifest not fitting its schema, failed warm-up) the change is refused whole, the current
 * generation keeps scoring, and the refusal is logged, counted and shown in GET /models.
 * The canary guard's decisions (guard.ts) switch generations the same way; they are persisted
 * (RolloutStore) and adopted from other instances.
 *
 * The chunk processor takes one generation per chunk — acquire() when its transaction starts,
 * release() after its commit or abort — so a chunk is scored by one generation whatever changes
 * meanwhile, and every switch lands at a transaction boundary.
 */
import type { Logger } from 'pino';
import { describeError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import { type ActiveModels, type Lease, VersionPool, versionsOf } from './generation.js';
import { CanaryGuard, type GuardDecision, type GuardRecord, GUARD_STATES, type RolloutStore } from './guard.js';
import { type Deployment, canaryKey, parseDeployment } from './deployment.js';
import { type ChangeView, type EffectiveDeployment, type ModelsView, iso, modelsView } from './models-view.js';
import { type CreateScorer, type PreparedVersion, type ScorerHooks, prepareVersion } from './prepare.js';
import { defaultVersion, loadVersion, scanRepository } from './repository.js';
import type { Role, ScoreReport } from './served.js';

export type { ActiveModels, Lease, Served } from './generation.js';

export interface ChangeResult {
  result: 'applied' | 'refused' | 'unchanged';
  reason?: string;
  generation: number;
}

export interface ModelSetHooks {
  onBatch?(version: string, role: Role | 'retiring', info: { rows: number; fillWaitMs: number; inferMs: number }): void;
  onCircuit?(version: string, role: Role | 'retiring', open: boolean): void;
  onScore?(report: ScoreReport): void;
}

export interface ModelSetOptions {
  repository: string;
  /** MODEL_DEPLOYMENT, for messages and GET /models; undefined: the highest version serves. */
  deploymentFile?: string;
  createScorer: CreateScorer;
  logger: Logger;
  metrics: Metrics;
  /** This instance, in guard records. */
  instance: string;
  store?: RolloutStore;
  hooks?: ModelSetHooks;
  /** Input, output and dead-letter topics: a shadow may not write to them. */
  reservedTopics?: readonly string[];
  /** Creates a shadow's topic if missing, before the change that names it applies (a failure refuses it). */
  ensureTopic?: (topic: string) => Promise<void>;
  /** Deadline for closing an unloaded version's sessions (ms). */
  closeDeadlineMs?: number;
  /** Guard tuning, for tests (guard.ts GuardOptions). */
  guard?: { minLatencySamples?: number; latencyFloorMs?: number };
  now?: () => number;
}

const MAX_REFUSALS = 10;

/** The file's deployment after the guard's decisions; versions at 0 % are not served (nor loaded). */
export function effectiveOf(file: Deployment, guard: CanaryGuard | undefined): EffectiveDeployment {
  const shadow = file.shadow !== undefined && file.shadow.percent > 0 ? { shadow: file.shadow } : {};
  if (file.canary === undefined || guard === undefined) return { stable: file.stable, ...shadow };
  if (guard.state === 'promoted') return { stable: file.canary.version, ...shadow };
  const percent = guard.percent;
  return percent > 0 ? { stable: file.stable, canary: { version: file.canary.version, percent }, ...shadow } : { stable: file.stable, ...shadow };
}

export class ModelSet {
  readonly #o: ModelSetOptions;
  readonly #now: () => number;
  readonly #pool: VersionPool;
  #file: Deployment | undefined;
  /** No MODEL_DEPLOYMENT: #file is the repository's default. */
  #byDefault = false;
  #guard: { key: string; guard: CanaryGuard } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #lastChange: ChangeView | undefined;
  readonly #refusals: ChangeView[] = [];
  #closed = false;

  private constructor(opts: ModelSetOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#pool = new VersionPool({ logger: opts.logger, closeDeadlineMs: opts.closeDeadlineMs ?? 5_000, onChange: () => this.#updateGauges() });
    opts.store?.onRecord((r) => this.#adopt(r));
  }

  /**
   * Loads the initial deployment (`text` of MODEL_DEPLOYMENT, or undefined for the repository's
   * highest version). Throws what refused it: CONFIG_INVALID (exit 2) or MODEL_UNAVAILABLE.
   */
  static async start(opts: ModelSetOptions, text: string | undefined): Promise<ModelSet> {
    const set = new ModelSet(opts);
    const { error } = await set.#apply(text, 'start');
    if (error !== undefined) {
      await set.close(opts.closeDeadlineMs ?? 5_000);
      throw error;
    }
    return set;
  }

  /** The current generation (for a look; a chunk uses acquire()). */
  current(): ActiveModels {
    const gen = this.#pool.current;
    if (gen === undefined || this.#closed) throw new Error('bug: ModelSet used before start or after close');
    return gen.models;
  }

  /** The current generation, held until release(): once per chunk, when its transaction starts. */
  acquire(): Lease {
    if (this.#closed) throw new Error('bug: ModelSet used after close');
    return this.#pool.acquire();
  }

  /** A new deployment file text (watcher, SIGHUP); changes are applied one at a time, in order. */
  apply(text: string, source: string): Promise<ChangeResult> {
    const run = this.#queue.then(() => this.#apply(text, source));
    this.#queue = run.catch(() => undefined);
    return run.then(({ error: _error, ...result }) => result);
  }

  /** A change that cannot even be read (the file vanished): refused, the current one keeps scoring. */
  refuse(reason: string, source: string): ChangeResult {
    const { error: _error, ...result } = this.#refuse(reason, source);
    return result;
  }

  snapshot(): ModelsView {
    const g = this.#guard;
    return modelsView({
      repository: this.#o.repository,
      deploymentFile: this.#o.deploymentFile,
      generation: this.#pool.generation,
      file: this.#byDefault ? undefined : this.#file,
      effective: this.#pool.current?.effective ?? { stable: '' },
      entries: this.#pool.entries.values(),
      roleOf: (v) => this.#pool.roleOf(v),
      guard: g === undefined ? undefined : { key: g.key, status: g.guard.status() },
      lastChange: this.#lastChange,
      refusals: this.#refusals,
    });
  }

  /** Closes every loaded version (shutdown). */
  async close(deadlineMs: number): Promise<void> {
    this.#closed = true;
    await this.#pool.closeAll(deadlineMs);
  }

  async #apply(text: string | undefined, source: string): Promise<ChangeResult & { error?: Error }> {
    const { repository: dir, deploymentFile = 'MODEL_DEPLOYMENT', reservedTopics, createScorer } = this.#o;
    let file: Deployment;
    try {
      const scan = scanRepository(dir);
      file = text === undefined ? { stable: defaultVersion(scan) } : parseDeployment(text, { file: deploymentFile, versions: scan.versions, reservedTopics });
    } catch (err) {
      return this.#refuse(describeError(err), source, err as Error);
    }
    if (this.#pool.current !== undefined && JSON.stringify(file) === JSON.stringify(this.#file)) return { result: 'unchanged', generation: this.#pool.generation };
    const key = canaryKey(file);
    const guard = key === undefined ? undefined : key === this.#guard?.key ? this.#guard : { key, guard: this.#newGuard(key, file) };
    const fresh: PreparedVersion[] = [];
    try {
      if (file.shadow !== undefined && this.#o.ensureTopic !== undefined) await this.#o.ensureTopic(file.shadow.topic);
      for (const v of versionsOf(effectiveOf(file, guard?.guard))) {
        const loaded = this.#pool.entries.get(v);
        if (loaded === undefined) {
          fresh.push(await prepareVersion(dir, v, createScorer, this.#hooksFor(v), this.#now));
          continue;
        }
        const sha = loadVersion(dir, v).sha256; // versions are immutable: a changed file is a mistake
        if (sha !== loaded.prepared.model.sha256) throw new Error(`version ${v} changed on disk since it was loaded (sha256 ${loaded.prepared.model.sha256.slice(0, 12)} -> ${sha.slice(0, 12)}); publish a new version folder instead`);
      }
      if (this.#closed) throw new Error('the scorer is shutting down');
    } catch (err) {
      await Promise.allSettled(fresh.map((p) => p.scorer.close(1_000)));
      return this.#refuse(describeError(err), source, err as Error);
    }
    // A decision another instance recorded while this change was loading.
    const recorded = guard === undefined ? undefined : this.#o.store?.get(guard.key);
    if (guard !== undefined && recorded !== undefined) guard.guard.adopt(recorded);
    for (const p of fresh) this.#pool.add(p);
    this.#file = file;
    this.#byDefault = text === undefined;
    this.#guard = guard;
    this.#install();
    this.#lastChange = { at: iso(this.#now()), source, result: 'applied' };
    if (source !== 'start') this.#o.metrics.deploymentChanges.inc({ result: 'applied' });
    this.#o.logger.info({ source, deployment: file, effective: this.#pool.current?.effective, loaded: fresh.map((p) => p.version) }, 'deployment applied');
    return { result: 'applied', generation: this.#pool.generation };
  }

  #refuse(reason: string, source: string, error?: Error): ChangeResult & { error: Error } {
    const view: ChangeView = { at: iso(this.#now()), source, result: 'refused', reason };
    this.#lastChange = view;
    this.#refusals.push(view);
    if (this.#refusals.length > MAX_REFUSALS) this.#refusals.shift();
    if (source !== 'start') {
      this.#o.metrics.deploymentChanges.inc({ result: 'refused' });
      this.#o.logger.warn({ source, reason, serving: this.#pool.current?.effective }, 'deployment change refused; the current deployment keeps scoring');
    }
    return { result: 'refused', reason, generation: this.#pool.generation, error: error ?? new Error(reason) };
  }

  #newGuard(key: string, file: Deployment): CanaryGuard {
    const canary = file.canary;
    if (canary === undefined) throw new Error('bug: a guard without a canary');
    const record = this.#o.store?.get(key);
    return new CanaryGuard({ key, stable: file.stable, canary, instance: this.#o.instance, now: this.#now, ...this.#o.guard, ...(record ? { record } : {}) });
  }

  /** A generation for the current file and guard state. */
  #install(): void {
    if (this.#file === undefined) throw new Error('bug: install without a deployment');
    this.#pool.install(effectiveOf(this.#file, this.#guard?.guard), (generation, r) => this.#onScore(generation, r));
  }

  #hooksFor(version: string): ScorerHooks {
    const { hooks } = this.#o;
    return {
      onBatch: (info) => {
        const role = this.#pool.roleOf(version);
        if (role === 'stable' || role === 'canary') this.#guard?.guard.observeBatch(role, info.inferMs);
        hooks?.onBatch?.(version, role, info);
      },
      onCircuit: (open) => {
        const role = this.#pool.roleOf(version);
        if (open && role === 'canary') this.#decided(this.#guard?.guard.canaryUnusable('its circuit opened: whole batches keep failing'));
        hooks?.onCircuit?.(version, role, open);
      },
    };
  }

  #onScore(generation: number, r: ScoreReport): void {
    this.#o.hooks?.onScore?.(r);
    // Only the current generation's canary informs the guard: an older chunk's rows were routed by an older split.
    if (r.role !== 'canary' || generation !== this.#pool.generation || this.#guard === undefined) return;
    const { guard } = this.#guard;
    const before = guard.state;
    this.#decided(r.error !== undefined ? guard.canaryUnusable(describeError(r.error)) : guard.observeRows(r.rows, r.failed));
    if (guard.state !== before) this.#updateGauges(); // observing -> healthy switches nothing
  }

  /** A guard decision taken here: switch, count, log, persist. */
  #decided(decision: GuardDecision | undefined): void {
    const g = this.#guard;
    if (decision === undefined || g === undefined || this.#closed) return;
    this.#install();
    this.#lastChange = { at: iso(decision.at), source: 'guard', result: 'applied', reason: decision.reason };
    const canary = this.#file?.canary?.version ?? '';
    if (decision.action === 'rollback') {
      this.#o.metrics.canaryRollbacks.inc({ version: canary });
      this.#o.logger.warn({ canary, decision }, 'canary rolled back: stable scores every record');
    } else {
      this.#o.logger.info({ canary, decision }, decision.toPercent >= 100 ? 'canary promoted: it is the stable version now' : 'canary promoted to the next step');
    }
    const record = g.guard.record;
    if (record !== undefined && this.#o.store !== undefined) {
      this.#o.store.write(record).catch((err: unknown) => this.#o.logger.warn({ err, key: record.key }, 'could not persist the guard decision; it holds here until restart'));
    }
  }

  /** A decision read from the store (another instance, or this one's echo). */
  #adopt(record: GuardRecord): void {
    if (this.#closed || this.#guard?.key !== record.key || !this.#guard.guard.adopt(record)) return;
    this.#install();
    this.#lastChange = { at: iso(this.#now()), source: 'guard', result: 'applied', reason: `${record.decision.reason} (decided by ${record.by})` };
    this.#o.logger.info({ decision: record.decision, by: record.by }, 'guard decision of another instance adopted');
  }

  #updateGauges(): void {
    const { metrics } = this.#o;
    metrics.modelVersionsLoaded.set(this.#pool.entries.size);
    metrics.modelInfo.reset();
    for (const { prepared: p } of this.#pool.entries.values()) metrics.modelInfo.set({ name: p.model.manifest.name, version: p.version, sha256: p.model.sha256 }, 1);
    metrics.canaryTrafficRatio.set((this.#pool.current?.effective.canary?.percent ?? 0) / 100);
    const state = this.#guard?.guard.state ?? 'none';
    for (const s of GUARD_STATES) metrics.canaryGuardState.set({ state: s }, s === state ? 1 : 0);
  }
}
