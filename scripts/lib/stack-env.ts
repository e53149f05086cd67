/** Broker and registry addresses for the scripts: the environment first, else `.stack/env` written by `npm run stack:up`. */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ROOT } from './feature-events.js';

export function stackEnv(): { KAFKA_BROKERS: string; SCHEMA_REGISTRY_URL: string } {
  const fromFile: Record<string, string> = {};
  const file = resolve(ROOT, '.stack/env');
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^export (\w+)=(.*)$/.exec(line.trim());
      if (m) fromFile[m[1] as string] = m[2] as string;
    }
  }
  const brokers = process.env.KAFKA_BROKERS ?? fromFile.KAFKA_BROKERS;
  const registry = process.env.SCHEMA_REGISTRY_URL ?? fromFile.SCHEMA_REGISTRY_URL;
  if (!brokers || !registry) {
    console.error('No Kafka/registry address: run `npm run stack:up` first (it writes .stack/env), or export KAFKA_BROKERS and SCHEMA_REGISTRY_URL.');
    process.exit(2);
  }
  return { KAFKA_BROKERS: brokers, SCHEMA_REGISTRY_URL: registry };
}
