/**
 * docker-compose.local.yml (the podman mode of `npm run test:compose`) agrees with
 * docker-compose.yml and with the image recipes of `npm run compose:images`, and the image cache
 * key moves exactly when an input does. Nothing here runs podman.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/fixtures.js';
import { parse } from 'yaml';
import { filesOf, inputHash } from '../../scripts/compose/build.js';
import { recipes } from '../../scripts/compose/images.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
interface Service { image?: string; build?: { args?: Record<string, string> }; environment?: Record<string, string>; healthcheck?: { test: string[] }; profiles?: string[] }
const services = (file: string): Record<string, Service> => (parse(readFileSync(resolve(ROOT, file), 'utf8')) as { services: Record<string, Service> }).services;
const base = services('docker-compose.yml');
const local = services('docker-compose.local.yml');

describe('docker-compose.local.yml', () => {
  it('overrides only services of docker-compose.yml, and every image it names is built by compose:images', () => {
    for (const name of Object.keys(local)) expect(Object.keys(base), `service ${name}`).toContain(name);
    const tags = recipes().map((r) => r.tag);
    for (const [name, s] of Object.entries(local)) if (s.image) expect(tags, `${name}: ${s.image}`).toContain(s.image);
    expect(tags).toContain(local.scorer?.build?.args?.NODE_IMAGE);
    expect(tags).toContain(`localhost/${base.scorer?.image}`);
    expect(tags).toContain(`localhost/${base.loadgen?.image}`);
  });

  it('keeps the registry service and port, adding only the Confluent-compatible path of Apicurio', () => {
    for (const svc of ['scorer', 'loadgen']) {
      expect(local[svc]?.environment?.SCHEMA_REGISTRY_URL, svc).toBe(`${base[svc]?.environment?.SCHEMA_REGISTRY_URL}/apis/ccompat/v7`);
    }
    expect(local['schema-registry']?.healthcheck?.test.join(' ')).toContain('http://localhost:8081/apis/ccompat/v7/');
  });

  it("runs the scorer's own readiness script, only in shell form", () => {
    const [kind, script, ...rest] = base.scorer?.healthcheck?.test ?? [];
    expect([kind, script, rest.length]).toEqual(['CMD', 'node', 2]);
    const [shellKind, command] = local.scorer?.healthcheck?.test ?? [];
    expect(shellKind).toBe('CMD-SHELL');
    expect(command).toBe(`node -e "${rest[1]}"`);
    expect(rest[1]).not.toMatch(/["$`\\]/); // nothing the shell's double quotes would change
  });

  it('leaves Grafana out (no local image), behind a profile', () => {
    expect(local.grafana).toEqual({ profiles: ['grafana'] });
  });
});

describe('image input hash', () => {
  it('changes with any input file or pin, and only then', () => {
    const dir = tempDir('compose-hash-');
    writeFileSync(join(dir, 'a'), 'one');
    writeFileSync(join(dir, 'b'), 'two');
    const h = () => inputHash(filesOf([dir]), { V: '1' });
    const first = h();
    expect(h()).toBe(first);
    writeFileSync(join(dir, 'b'), 'two!');
    const changed = h();
    expect(changed).not.toBe(first);
    expect(inputHash(filesOf([dir]), { V: '2' })).not.toBe(changed);
    writeFileSync(join(dir, 'c'), '');
    expect(h()).not.toBe(changed);
  });
});
