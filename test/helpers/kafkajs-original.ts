/**
 * kafkajs 2.2.4's own code, whatever the module cache holds: the patches in src/kafka/ replace
 * kafkajs files in Node's require cache, so a test that compares a patch with the original loads
 * the original file, and every kafkajs file it requires, fresh from disk into a private graph.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';

const require = createRequire(import.meta.url);
const kafkajsSrc = `${dirname(require.resolve('kafkajs/package.json'))}${sep}src${sep}`;

/** `kafkajs/src/<file>` as shipped, with its kafkajs dependencies as shipped (one fresh graph per call). */
export function originalKafkajs<T>(file: string): T {
  const graph = new Map<string, { exports: unknown }>();
  const load = (path: string): unknown => {
    const known = graph.get(path);
    if (known !== undefined) return known.exports;
    const mod = { exports: {} as unknown };
    graph.set(path, mod);
    const req = createRequire(path);
    const local = (id: string): unknown => {
      const resolved = req.resolve(id);
      return resolved.startsWith(kafkajsSrc) && resolved.endsWith('.js') ? load(resolved) : req(id);
    };
    new Function('require', 'module', 'exports', '__filename', '__dirname', readFileSync(path, 'utf8'))(local, mod, mod.exports, path, dirname(path));
    return mod.exports;
  };
  return load(require.resolve(`kafkajs/src/${file}`)) as T;
}
