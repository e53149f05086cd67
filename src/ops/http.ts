/**
 * The operational HTTP endpoint (node:http only): GET /metrics for Prometheus, GET /healthz for
 * the liveness probe, GET /readyz for the readiness probe, GET /models (which versions serve)
 * when given a provider. Other paths go to mounted handlers (the Open Inference Protocol
 * endpoint, src/serve/oip.ts, when INFER_HTTP=true), else 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** What the probes answer, computed by the caller on each request. */
export interface HealthState {
  /** false: the process is wedged and should be restarted (liveness). */
  live: boolean;
  /** false: the scorer is not processing, e.g. starting, rebalancing, circuit open (readiness). */
  ready: boolean;
  /** Named checks: true passes; false, or a string saying why, fails. */
  checks: Record<string, boolean | string>;
}

export interface HttpServerOptions {
  /** 0 picks a free port; the returned `port` is the real one. */
  port: number;
  host: string;
  registry: Registry;
  /** May be async: with PIPELINE_THREADS > 1 the pipelines are asked over their message ports (src/threads/). */
  health: () => HealthState | Promise<HealthState>;
  /** GET /models (the model set's snapshot, model-set.ts); absent: no such route. */
  models?: () => unknown;  // may be async (PIPELINE_THREADS > 1: asked of a pipeline thread)
  logger: Logger;
}

/** A mounted route: answers the request and resolves true, or resolves false to pass it on. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean>;

export interface HttpServer {
  /** The port actually bound. */
  readonly port: number;
  /** Adds routes asked after /metrics, /healthz and /readyz. */
  mount(handler: RouteHandler): void;
  /** Stops accepting connections and resolves once open ones are closed. Idempotent. */
  close(): Promise<void>;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

/** Failing checks, as "name" (false) or "name: why" (a string). */
const reasonsOf = (checks: Record<string, boolean | string>): string[] =>
  Object.entries(checks).filter(([, v]) => v !== true).map(([k, v]) => (typeof v === 'string' ? `${k}: ${v}` : k));

class ProbeServer implements HttpServer {
  readonly #server: Server;
  readonly #opts: HttpServerOptions;
  readonly #routes: RouteHandler[] = [];
  #closed: Promise<void> | undefined;
  #port = 0;

  constructor(opts: HttpServerOptions) {
    this.#opts = opts;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        opts.logger.error({ err, url: req.url }, 'http handler failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('internal error\n');
      });
    });
  }

  /** Kept from listen(): address() is null once closed. */
  get port(): number {
    return this.#port;
  }

  listen(): Promise<this> {
    const { port, host, logger } = this.#opts;
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        this.#port = (this.#server.address() as AddressInfo).port;
        this.#server.on('error', (err) => logger.error({ err }, 'http server error'));
        resolve(this);
      });
    });
  }

  mount(handler: RouteHandler): void {
    this.#routes.push(handler);
  }

  close(): Promise<void> {
    this.#closed ??= new Promise((resolve, reject) => {
      this.#server.close((err) => (err ? reject(err) : resolve()));
      // A scraper's idle keep-alive connection would otherwise hold close() for keepAliveTimeout.
      this.#server.closeIdleConnections();
    });
    return this.#closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const { models } = this.#opts;
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz' && !(path === '/models' && models !== undefined)) {
      for (const route of this.#routes) if (await route(req, res, path)) return;
      res.writeHead(404, JSON_HEADERS).end(JSON.stringify({ status: 'not found' }));
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { ...JSON_HEADERS, allow: 'GET' }).end(JSON.stringify({ status: 'method not allowed' }));
      return;
    }
    if (path === '/models' && models !== undefined) {
      res.writeHead(200, JSON_HEADERS).end(JSON.stringify(await models()));
      return;
    }
    if (path === '/metrics') {
      const { registry, health } = this.#opts;
      // Evaluating health refreshes the readiness gauge, so a scrape never shows a stale scorer_ready.
      await health();
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(text);
      return;
    }
    const state = await this.#health();
    const ok = path === '/healthz' ? state.live : state.ready;
    const body = ok
      ? { status: 'ok', checks: state.checks }
      : { status: path === '/healthz' ? 'unhealthy' : 'not ready', reasons: reasonsOf(state.checks), checks: state.checks };
    res.writeHead(ok ? 200 : 503, JSON_HEADERS).end(JSON.stringify(body));
  }

  /** A throwing health function means neither live nor ready, not a 500 the probe misreads. */
  async #health(): Promise<HealthState> {
    try {
      return await this.#opts.health();
    } catch (err) {
      this.#opts.logger.error({ err }, 'health check threw');
      return { live: false, ready: false, checks: { health: `check threw: ${err instanceof Error ? err.message : String(err)}` } };
    }
  }
}

export function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  return new ProbeServer(opts).listen();
}
