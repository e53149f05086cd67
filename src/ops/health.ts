/**
 * Readiness, in one place: the start-up checks as they pass, the consumer's group membership,
 * shutdown, and the circuit breaker's state. /readyz and the scorer_ready gauge read it.
 * Liveness is the process itself (a crashed consumer ends it; see main.ts).
 */
import type { HealthState } from './http.js';
import type { Metrics } from './metrics.js';

export type StartupCheck = 'model' | 'registry' | 'topics';

export interface HealthSources {
  /** True once the consumer has joined the group. */
  consumerJoined(): boolean;
  /** True while the circuit breaker is open. */
  circuitOpen(): boolean;
}

export class Health {
  readonly #metrics: Metrics;
  readonly #checks: Record<StartupCheck, boolean> = { model: false, registry: false, topics: false };
  #sources: HealthSources = { consumerJoined: () => false, circuitOpen: () => false };
  #shuttingDown = false;

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
  }

  pass(check: StartupCheck): void {
    this.#checks[check] = true;
  }

  /** Where the running parts' state is read from, once they exist. */
  watch(sources: HealthSources): void {
    this.#sources = sources;
  }

  shuttingDown(): void {
    this.#shuttingDown = true;
  }

  state(): HealthState {
    const consumerJoined = this.#sources.consumerJoined();
    const circuitOpen = this.#sources.circuitOpen();
    const c = this.#checks;
    const ready = c.model && c.registry && c.topics && consumerJoined && !this.#shuttingDown && !circuitOpen;
    this.#metrics.ready.set(ready ? 1 : 0);
    return { live: true, ready, checks: { ...c, shuttingDown: this.#shuttingDown, consumerJoined, circuitOpen } };
  }
}
