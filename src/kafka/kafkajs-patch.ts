/**
 * How the project patches kafkajs: a replacement is put into Node's CommonJS module cache under
 * the path of the kafkajs file it replaces, before any kafkajs file that `require`s it has loaded,
 * so kafkajs captures the replacement instead of its own code. Every patch is pinned to the one
 * kafkajs version whose internals it was written against and checked (test/unit/kafka/).
 * The patches: kafkajs-fix.ts (read_committed filter, O(n) grouping), kafkajs-send.ts (send
 * retry without duplicates or loss), kafkajs-murmur2.ts,
 * kafkajs-produce.ts (record batch encoding), kafkajs-fetch.ts (record batch decoding),
 * kafkajs-coordinators.ts (transaction and group coordinators remembered per producer),
 * kafkajs-rejoin.ts (the chunks in flight drained before the consumer rejoins its group),
 * kafkajs-kip447.ts (group generation in GROUP_JOIN, TxnOffsetCommit v3, OffsetFetch v7 require_stable),
 * kafkajs-authz.ts (an authorization refusal while finding a coordinator is thrown, not swallowed;
 * a prototype method, patched in place since BrokerPool instances are made at run time).
 */
import { createRequire } from 'node:module';

export const kafkajsRequire = createRequire(import.meta.url);

const version = (kafkajsRequire('kafkajs/package.json') as { version: string }).version;
if (version !== '2.2.4') {
  throw new Error(`src/kafka/kafkajs-*.ts patch kafkajs 2.2.4 internals, but kafkajs ${version} is installed: check whether each patch is still needed and update or remove it`);
}

/** A kafkajs source file, as kafkajs itself (or its replacement) sees it. */
export function kafkajsModule<T>(file: string): T {
  return kafkajsRequire(`kafkajs/src/${file}`) as T;
}

const replacements = new Set<unknown>();

/**
 * Puts `replacement` in the module cache under `kafkajs/src/<file>`. `capturedBy` lists the
 * kafkajs files that `require` it at load time: if one has loaded already, it holds the original
 * and the patch would silently not apply, so this throws instead.
 */
export function replaceKafkajsModule(file: string, capturedBy: readonly string[], replacement: unknown): void {
  const target = kafkajsRequire.resolve(`kafkajs/src/${file}`);
  for (const dependent of capturedBy) {
    const loaded = kafkajsRequire.cache[kafkajsRequire.resolve(`kafkajs/src/${dependent}`)];
    // A dependent that is itself replaced by a patch does not use what its original captured.
    if (loaded !== undefined && !replacements.has(loaded.exports) && kafkajsRequire.cache[target]?.exports !== replacement) {
      throw new Error(`kafkajs patches must load before kafkajs: ${dependent} already captured ${file} (import src/kafka/kafkajs-fix.ts first)`);
    }
  }
  kafkajsRequire(target);
  const cached = kafkajsRequire.cache[target];
  if (cached === undefined) throw new Error(`kafkajs patch: ${target} did not load`);
  cached.exports = replacement;
  replacements.add(replacement);
}
