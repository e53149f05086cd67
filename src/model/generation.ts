/**
 * Loaded versions and the generations that serve them. A generation is immutable — the versions
 * of one effective deployment, each bound to its role, and the key split — and is what one chunk
 * scores with from its transaction's start to its commit (acquire/release). Each version counts
 * the generations using it (the current one, and older ones still held by a chunk) and is closed
 * when none is left, so a switch never pulls a session from under a running chunk.
 */
import type { Logger } from 'pino';
import type { EffectiveDeployment } from './models-view.js';
import type { PreparedVersion } from './prepare.js';
import { Router } from './routing.js';
import { type Role, type ScoreReport, roleScorer } from './served.js';

/** A version as one generation serves it; `scorer` reports every call (served.ts). */
export type Served = Omit<PreparedVersion, 'loadedAt'>;

/** One generation: what a chunk scores with from start to commit. */
export interface ActiveModels {
  readonly generation: number;
  readonly stable: Served;
  /** Absent without canary traffic (none in the file, rolled back, promoted). */
  readonly canary: (Served & { percent: number }) | undefined;
  readonly shadow: (Served & { topic: string; percent: number }) | undefined;
  readonly router: Router;
  /** The version that scores this record: canary for its share of keys, else stable. */
  pick(key: Buffer | null, partition: number, offset: string | bigint): Served;
  /** Whether the shadow scores this record too. */
  shadowed(key: Buffer | null, partition: number, offset: string | bigint): boolean;
}

export interface Lease extends ActiveModels {
  /** Idempotent. */
  release(): void;
}

export interface Entry {
  prepared: PreparedVersion;
  /** Generations (current or still held by a chunk) that use it. */
  users: number;
  /** Since loaded, any role. */
  rows: number;
  failed: number;
}

interface Generation {
  models: ActiveModels;
  effective: EffectiveDeployment;
  /** The current hold plus one per lease. */
  holds: number;
}

export function versionsOf(eff: EffectiveDeployment): string[] {
  return [eff.stable, ...(eff.canary ? [eff.canary.version] : []), ...(eff.shadow ? [eff.shadow.version] : [])];
}

export class VersionPool {
  readonly entries = new Map<string, Entry>();
  readonly #logger: Logger;
  readonly #closeDeadlineMs: number;
  readonly #onChange: () => void;
  #gen: Generation | undefined;
  #n = 0;

  constructor({ logger, closeDeadlineMs, onChange }: { logger: Logger; closeDeadlineMs: number; onChange: () => void }) {
    this.#logger = logger;
    this.#closeDeadlineMs = closeDeadlineMs;
    this.#onChange = onChange;
  }

  get generation(): number {
    return this.#n;
  }

  get current(): { models: ActiveModels; effective: EffectiveDeployment } | undefined {
    return this.#gen;
  }

  add(prepared: PreparedVersion): void {
    this.entries.set(prepared.version, { prepared, users: 0, rows: 0, failed: 0 });
  }

  roleOf(version: string): Role | 'retiring' {
    const eff = this.#gen?.effective;
    if (eff?.stable === version) return 'stable';
    if (eff?.canary?.version === version) return 'canary';
    if (eff?.shadow?.version === version) return 'shadow';
    return 'retiring';
  }

  /** Makes `effective` (its versions loaded) the current generation; the previous one retires when released. */
  install(effective: EffectiveDeployment, report: (generation: number, r: ScoreReport) => void): void {
    const generation = ++this.#n;
    const served = (v: string, role: Role): Served => {
      const e = this.entries.get(v);
      if (e === undefined) throw new Error(`bug: version ${v} is not loaded`);
      const { version, model, scorer, circuit } = e.prepared;
      return { version, model, circuit, scorer: roleScorer(scorer, version, role, (r) => this.#count(generation, r, report)) };
    };
    const stable = served(effective.stable, 'stable');
    const canary = effective.canary === undefined ? undefined : { ...served(effective.canary.version, 'canary'), percent: effective.canary.percent };
    const shadow = effective.shadow === undefined ? undefined : { ...served(effective.shadow.version, 'shadow'), topic: effective.shadow.topic, percent: effective.shadow.percent };
    const router = new Router({ canaryPercent: canary?.percent ?? 0, shadowPercent: shadow?.percent ?? 0 });
    const models: ActiveModels = {
      generation, stable, canary, shadow, router,
      pick: (key, partition, offset) => (canary !== undefined && router.isCanary(key, partition, offset) ? canary : stable),
      shadowed: (key, partition, offset) => shadow !== undefined && router.isShadowed(key, partition, offset),
    };
    for (const v of versionsOf(effective)) (this.entries.get(v) as Entry).users++;
    const previous = this.#gen;
    this.#gen = { models, effective, holds: 1 };
    if (previous !== undefined) this.#drop(previous);
    // Loaded for this change but not in it after all (a guard decision arrived meanwhile).
    for (const [v, e] of this.entries) if (e.users === 0) this.#unload(v, e);
    this.#onChange();
  }

  acquire(): Lease {
    const gen = this.#gen;
    if (gen === undefined) throw new Error('bug: no generation installed');
    gen.holds++;
    let released = false;
    return Object.assign(Object.create(gen.models) as ActiveModels, {
      release: () => {
        if (released) return;
        released = true;
        this.#drop(gen);
      },
    });
  }

  async closeAll(deadlineMs: number): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(entries.map((e) => e.prepared.scorer.close(deadlineMs)));
    this.#onChange();
  }

  #count(generation: number, r: ScoreReport, report: (generation: number, r: ScoreReport) => void): void {
    const e = this.entries.get(r.version);
    if (e !== undefined) {
      e.rows += r.rows;
      e.failed += r.failed;
    }
    report(generation, r);
  }

  /** One hold of `gen` is gone; when none is left, versions nobody uses any more are closed. */
  #drop(gen: Generation): void {
    if (--gen.holds > 0) return;
    for (const v of versionsOf(gen.effective)) {
      const e = this.entries.get(v);
      if (e !== undefined && --e.users === 0) this.#unload(v, e);
    }
    this.#onChange();
  }

  #unload(version: string, e: Entry): void {
    this.entries.delete(version);
    this.#logger.info({ version }, 'model version unloaded');
    e.prepared.scorer.close(this.#closeDeadlineMs).catch((err: unknown) => this.#logger.warn({ err, version }, 'closing an unloaded version failed'));
  }
}
