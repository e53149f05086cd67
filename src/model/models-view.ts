/**
 * What `GET /models` answers: every loaded version with its role and traffic share, the canary
 * guard's state and last decision, and the last deployment changes with their reasons. Plain
 * JSON, built from the model set's state on each request.
 */
import type { Deployment, ShadowSpec } from './deployment.js';
import type { Entry } from './generation.js';
import type { GuardDecision, GuardState, GuardStatus } from './guard.js';
import type { Role } from './served.js';

/** What serves after the guard's decisions: the file's deployment, with the canary's current percent (none once rolled back or promoted). */
export interface EffectiveDeployment {
  stable: string;
  canary?: { version: string; percent: number };
  shadow?: ShadowSpec;
}

export interface VersionView {
  version: string;
  name: string;
  sha256: string;
  /** retiring: no longer in the deployment, unloaded once the chunks still using it are done. */
  role: Role | 'retiring';
  /** Share of records it scores as stable or canary, 0..1; for the shadow, the share it shadow-scores. */
  traffic: number;
  loadedSince: string;
  modelPath: string;
  eventSchema: string;
  /** Since loaded, in any role: rows scored and rows failed (the shadow's failures are only counted). */
  rows: number;
  failedRows: number;
  /** The canary's guard, on the canary's entry. */
  guard?: { state: GuardState; lastDecision: GuardDecision | undefined };
}

export interface ChangeView {
  at: string;
  /** start, watch, poll, signal (SIGHUP), or guard. */
  source: string;
  result: 'applied' | 'refused';
  reason?: string;
}

export interface ModelsView {
  repository: string;
  deploymentFile: string | null;
  /** Increases with every switch (deployment change or guard decision). */
  generation: number;
  /** The file as applied; null: no MODEL_DEPLOYMENT, the repository's highest version serves. */
  deployment: Deployment | null;
  effective: EffectiveDeployment;
  versions: VersionView[];
  guard: (Omit<GuardStatus, 'since'> & { key: string; canary: string; since: string }) | null;
  lastChange: ChangeView | null;
  /** The most recent refusals, newest last. */
  refusals: ChangeView[];
}

export const iso = (ms: number): string => new Date(ms).toISOString();

/** Traffic share of `role` under `eff`, 0..1. */
export function trafficOf(role: Role | 'retiring', eff: EffectiveDeployment): number {
  const canary = (eff.canary?.percent ?? 0) / 100;
  if (role === 'stable') return 1 - canary;
  if (role === 'canary') return canary;
  if (role === 'shadow') return (eff.shadow?.percent ?? 0) / 100;
  return 0;
}

export interface ViewInput {
  repository: string;
  deploymentFile: string | undefined;
  generation: number;
  file: Deployment | undefined;
  effective: EffectiveDeployment;
  entries: Iterable<Entry>;
  roleOf(version: string): Role | 'retiring';
  guard: { key: string; status: GuardStatus } | undefined;
  lastChange: ChangeView | undefined;
  refusals: readonly ChangeView[];
}

export function modelsView(i: ViewInput): ModelsView {
  const status = i.guard?.status;
  const versions = [...i.entries].map(({ prepared: p, rows, failed }): VersionView => {
    const role = i.roleOf(p.version);
    const view: VersionView = {
      version: p.version,
      name: p.model.manifest.name,
      sha256: p.model.sha256,
      role,
      traffic: trafficOf(role, i.effective),
      loadedSince: iso(p.loadedAt),
      modelPath: p.model.modelPath,
      eventSchema: p.model.eventSchemaPath,
      rows,
      failedRows: failed,
    };
    if (p.version === i.file?.canary?.version && status !== undefined) view.guard = { state: status.state, lastDecision: status.lastDecision };
    return view;
  });
  const canary = i.file?.canary?.version;
  return {
    repository: i.repository,
    deploymentFile: i.deploymentFile ?? null,
    generation: i.generation,
    deployment: i.file ?? null,
    effective: i.effective,
    versions,
    guard: i.guard === undefined || status === undefined || canary === undefined ? null : { ...status, key: i.guard.key, canary, since: iso(status.since) },
    lastChange: i.lastChange ?? null,
    refusals: [...i.refusals],
  };
}
