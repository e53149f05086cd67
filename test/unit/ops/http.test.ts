import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { startHttpServer, type HealthState, type HttpServer } from '../../../src/ops/http.js';
import { createLogger } from '../../../src/ops/logger.js';

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const lines: Record<string, unknown>[] = [];
const logger = createLogger('info', { destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });

async function start(health: () => HealthState | Promise<HealthState>, registry = new Registry(), models?: () => unknown): Promise<{ url: string; server: HttpServer; registry: Registry }> {
  const server = await startHttpServer({ port: 0, host: '127.0.0.1', registry, health, logger, ...(models ? { models } : {}) });
  servers.push(server);
  return { url: `http://127.0.0.1:${server.port}`, server, registry };
}

const healthy: HealthState = { live: true, ready: true, checks: { kafka: true, model: true } };

describe('startHttpServer', () => {
  it('serves GET /models from its provider, as JSON, and has no such route without one', async () => {
    let generation = 1;
    const { url } = await start(() => healthy, new Registry(), () => ({ generation, versions: [{ version: '1.0.0', role: 'stable' }] }));
    const res = await fetch(`${url}/models`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ generation: 1, versions: [{ version: '1.0.0', role: 'stable' }] });
    generation = 2;
    expect(await (await fetch(`${url}/models`)).json()).toMatchObject({ generation: 2 }); // computed per request
    expect((await fetch(`${url}/models`, { method: 'POST' })).status).toBe(405);
    const plain = await start(() => healthy);
    expect((await fetch(`${plain.url}/models`)).status).toBe(404);
  });

  it('binds a real free port when asked for 0', async () => {
    const { server } = await start(() => healthy);
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves /metrics in the Prometheus text format', async () => {
    const registry = new Registry();
    new Counter({ name: 'scorer_test_total', help: 'test', registers: [registry] }).inc(3);
    const { url } = await start(() => healthy, registry);
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(registry.contentType);
    expect(await res.text()).toContain('scorer_test_total 3');
  });

  it('answers /healthz from health().live', async () => {
    let state: HealthState = healthy;
    const { url } = await start(() => state);
    let res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ status: 'ok', checks: { kafka: true, model: true } });
    state = { live: false, ready: false, checks: { kafka: true, model: 'inference worker died' } };
    res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'unhealthy', reasons: ['model: inference worker died'] });
  });

  it('answers /readyz from health().ready, listing the reasons', async () => {
    let state: HealthState = { live: true, ready: false, checks: { kafka: false, partitions: 'rebalancing', model: true } };
    const { url } = await start(() => state);
    let res = await fetch(`${url}/readyz?verbose=1`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      status: 'not ready',
      reasons: ['kafka', 'partitions: rebalancing'],
      checks: { kafka: false, partitions: 'rebalancing', model: true },
    });
    // Live while not ready: a restart would not help.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    state = healthy;
    res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });

  it('fails both probes, and logs, when health() throws', async () => {
    const { url } = await start(() => {
      throw new Error('state unavailable');
    });
    for (const path of ['/healthz', '/readyz']) {
      const res = await fetch(`${url}${path}`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ reasons: ['health: check threw: state unavailable'] });
    }
    expect(lines.some((l) => l.msg === 'health check threw')).toBe(true);
  });

  it('awaits an async health() (PIPELINE_THREADS asks each pipeline), and fails both probes when it rejects', async () => {
    const { url } = await start(async () => ({ ...healthy, ready: false, checks: { pipelines: 'pipeline 1: no answer within 2000 ms' } }));
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${url}/readyz`)).json()).toMatchObject({ status: 'not ready', reasons: ['pipelines: pipeline 1: no answer within 2000 ms'] });
    const failing = await start(() => Promise.reject(new Error('port closed')));
    expect((await fetch(`${failing.url}/healthz`)).status).toBe(503);
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const { url } = await start(() => healthy);
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/metrics/extra`)).status).toBe(404);
    const post = await fetch(`${url}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    expect((await fetch(`${url}/readyz`, { method: 'DELETE' })).status).toBe(405);
  });

  it('answers 500 when collecting metrics fails', async () => {
    const registry = new Registry();
    new Counter({ name: 'scorer_broken_total', help: 'x', registers: [registry], collect: () => { throw new Error('collector broke'); } });
    const { url } = await start(() => healthy, registry);
    expect((await fetch(`${url}/metrics`)).status).toBe(500);
    expect(lines.some((l) => l.msg === 'http handler failed')).toBe(true);
  });

  it('rejects when the port is taken', async () => {
    const { server } = await start(() => healthy);
    await expect(startHttpServer({ port: server.port, host: '127.0.0.1', registry: new Registry(), health: () => healthy, logger })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('closes promptly despite keep-alive connections, and idempotently', async () => {
    const { url, server } = await start(() => healthy);
    await (await fetch(`${url}/healthz`)).text(); // leaves an idle keep-alive socket
    const started = Date.now();
    await Promise.all([server.close(), server.close()]);
    expect(Date.now() - started).toBeLessThan(1_000);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
