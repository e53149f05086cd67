/** Small network helpers for tests: a free loopback port, and one metric summed over its label sets from a scorer's /metrics. */
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

/** Scrapes http://127.0.0.1:<port>/metrics over HTTP and sums every series of `name` whose labels include `labels` (0 when absent). */
export async function scrape(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? ([0-9.e+-]+)$`, 'gm'))) {
    const have = (m[1] ?? '').split(',');
    if (wanted.every((w) => have.includes(w))) total += Number(m[2]);
  }
  return total;
}
