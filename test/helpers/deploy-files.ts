/**
 * Reading the deployment files for test/unit/deploy-*.test.ts: repository paths, YAML documents,
 * the Dockerfile as instructions by stage, and docker-compose.yml's services.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { type K8sObject, readYamlDocs } from './kustomize.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const at = (...p: string[]): string => resolve(ROOT, ...p);
export const text = (...p: string[]): string => readFileSync(at(...p), 'utf8');
/** Every document of a YAML file of the repository. */
export const yamlDocs = (...p: string[]): K8sObject[] => readYamlDocs(at(...p));

// ---- Dockerfile ---------------------------------------------------------------------------------
export interface Instr {
  op: string;
  args: string;
  stage: string;
}

/** The Dockerfile's instructions (continuations joined, comments dropped), each with its stage's name. */
export function dockerfile(): Instr[] {
  const lines = text('Dockerfile').replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  let stage = '';
  return lines.map((l) => {
    const [op = '', ...rest] = l.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? args;
    return { op: op.toUpperCase(), args, stage };
  });
}

export const finalStage = (): Instr[] => {
  const all = dockerfile();
  const last = all.at(-1)?.stage;
  return all.filter((i) => i.stage === last);
};

/** The numeric uid of the final stage's last USER. */
export const dockerfileUid = (): number => Number(/^(\d+)/.exec(finalStage().filter((i) => i.op === 'USER').at(-1)?.args ?? '')?.[1]);

// ---- docker-compose.yml -------------------------------------------------------------------------
export interface ComposeService {
  image?: string;
  build?: { target?: string };
  environment?: Record<string, string>;
  ports?: string[];
  command?: string[];
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }>;
}

export const compose = (): Record<string, ComposeService> => (parse(text('docker-compose.yml')) as { services: Record<string, ComposeService> }).services;
