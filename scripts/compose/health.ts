/**
 * Runs the health checks of a compose project's containers under podman. Podman schedules a
 * container's HEALTHCHECK with systemd timers, and these machines have no systemd: without
 * someone calling `podman healthcheck run`, every container stays "starting" and docker-compose's
 * `depends_on: condition: service_healthy` waits forever. This pump calls it for each running
 * container of the project at the container's own interval (start period and retries are
 * podman's, as with systemd), one check at a time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { podmanEnv } from './engine.js';
import { run, secondsSince } from './run.js';

interface Tracked { name: string; intervalMs: number; dueMs: number; status: string }

export interface HealthPump {
  stop(): Promise<void>;
}

export function startHealthPump(project: string, everyMs = 1_000): HealthPump {
  const env = podmanEnv();
  const tracked = new Map<string, Tracked>();
  let running = true;
  const started = Date.now();
  const loop = (async () => {
    while (running) {
      const ps = await run('podman', ['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.ID}} {{.Names}}'], { echo: false, allowFail: true, env });
      const live = new Set<string>();
      for (const line of ps.stdout.trim().split('\n').filter(Boolean)) {
        const [id = '', name = ''] = line.split(' ');
        live.add(id);
        if (!tracked.has(id)) {
          const hc = await run('podman', ['inspect', '--format', '{{json .Config.Healthcheck}}', id], { echo: false, allowFail: true, env });
          const cfg = JSON.parse(hc.stdout.trim() || 'null') as { Test?: string[]; Interval?: number } | null;
          const none = !cfg?.Test?.length || cfg.Test[0] === 'NONE';
          // Interval is in nanoseconds; Docker's default is 30 s.
          tracked.set(id, { name, intervalMs: none ? Infinity : (cfg.Interval ?? 30e9) / 1e6, dueMs: none ? Infinity : Date.now(), status: 'starting' });
        }
      }
      for (const id of tracked.keys()) if (!live.has(id)) tracked.delete(id);
      for (const [id, t] of tracked) {
        if (!running || t.dueMs > Date.now()) continue; // never, for a container without a health check
        t.dueMs = Date.now() + t.intervalMs;
        const r = await run('podman', ['healthcheck', 'run', id], { echo: false, allowFail: true, env });
        // 1 + "unhealthy": the check failed; anything else is podman's own error (its message says which).
        const status = r.code === 0 ? 'healthy' : r.stdout.trim() || `exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`;
        if (status !== t.status) console.log(`compose-e2e: health ${t.name}: ${status} (${secondsSince(started)} s)`);
        t.status = status;
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}
