/**
 * test/helpers/kustomize.ts renders as `kubectl kustomize` does: each expectation below is what
 * kubectl 1.32 (kustomize v5.5.0) printed for the same files (in its own order: by kind), so the deployment tests can rely on
 * the helper without the binary. It refuses what it does not implement rather than render it wrong.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type K8sObject, renderKustomization } from '../helpers/kustomize.js';

const root = mkdtempSync(join(tmpdir(), 'kustomize-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes the files of a kustomization directory under the temp root and returns its path. */
function dir(name: string, files: Record<string, string>): string {
  const path = join(root, name);
  mkdirSync(path, { recursive: true });
  for (const [file, content] of Object.entries(files)) writeFileSync(join(path, file), content);
  return path;
}

dir('base', {
  'kustomization.yaml': 'resources: [app.yaml]\nimages:\n  - name: app\n    newTag: "1.0"\n',
  'app.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  template:
    metadata: { labels: { app: app } }
    spec:
      terminationGracePeriodSeconds: 40
      containers:
        - name: main
          image: app
          env: [{ name: A, value: "1" }]
          resources: { limits: { cpu: "1" } }
---
apiVersion: v1
kind: Service
metadata: { name: app }
spec:
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: { name: app }
spec:
  pollingInterval: 15
  triggers: [{ type: kafka, metadata: { topic: a, lagThreshold: "5" } }]
`,
});

const overlay = dir('overlay', {
  'kustomization.yaml': `namespace: prod
resources: [ns.yaml, ../base]
labels:
  - pairs: { team: ml }
    includeTemplates: true
images:
  - name: app
    newName: registry.example.com/app
patches:
  - path: patch.yaml
`,
  'ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: { name: prod }\n',
  'patch.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  template:
    spec:
      terminationGracePeriodSeconds: null
      containers:
        - name: main
          env: [{ name: B, value: "2" }]
          resources: { limits: { memory: 1Gi } }
---
apiVersion: v1
kind: Service
metadata: { name: app }
spec:
  ports: [{ name: extra, port: 9999 }]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: { name: app }
spec:
  pollingInterval: null
  triggers: [{ type: kafka, metadata: { topic: b } }]
`,
});

describe('test/helpers/kustomize.ts', () => {
  const objs = renderKustomization(overlay);
  const get = (kind: string) => objs.find((o) => o.kind === kind) as K8sObject & { spec: Record<string, unknown> };

  it('builds the base with its own images first, then patches, namespace, labels and images of the overlay', () => {
    // kubectl sorts the output by kind; the helper keeps resource order, which the tests do not rely on.
    expect(objs.map((o) => o.kind)).toEqual(['Namespace', 'Deployment', 'Service', 'ScaledObject']);
    const d = get('Deployment');
    expect(d.spec).toMatchObject({ template: { spec: { containers: [{ image: 'registry.example.com/app:1.0' }] } } });
    expect(objs.map((o) => o.metadata.namespace)).toEqual([undefined, 'prod', 'prod', 'prod']);
    for (const o of objs) expect(o.metadata.labels?.team).toBe('ml');
    expect(d.spec).toMatchObject({ template: { metadata: { labels: { app: 'app', team: 'ml' } } } });
  });

  it('merges built-in lists by their key (new items first), deletes on null, replaces custom resources\' lists', () => {
    const pod = get('Deployment').spec.template as { spec: { terminationGracePeriodSeconds?: number; containers: { env: unknown[]; resources: unknown }[] } };
    expect(pod.spec.terminationGracePeriodSeconds).toBeUndefined();
    expect(pod.spec.containers).toHaveLength(1);
    expect(pod.spec.containers[0]?.env).toEqual([{ name: 'B', value: '2' }, { name: 'A', value: '1' }]);
    expect(pod.spec.containers[0]?.resources).toEqual({ limits: { cpu: '1', memory: '1Gi' } });
    expect(get('Service').spec.ports).toEqual([{ name: 'extra', port: 9999 }, { name: 'http', port: 80, targetPort: 8080 }]);
    expect(get('ScaledObject').spec).toEqual({ triggers: [{ type: 'kafka', metadata: { topic: 'b' } }] });
  });

  it('refuses kustomization fields and patch forms it does not implement, and patches that match nothing', () => {
    const generator = dir('generator', { 'kustomization.yaml': 'configMapGenerator: [{ name: x, literals: [A=1] }]\n' });
    expect(() => renderKustomization(generator)).toThrow(/configMapGenerator not supported/);
    const inline = dir('inline', { 'kustomization.yaml': 'resources: [../base]\npatches: [{ target: { kind: Service }, patch: "[]" }]\n' });
    expect(() => renderKustomization(inline)).toThrow(/only \{ path \} is supported/);
    const selectors = dir('selectors', { 'kustomization.yaml': 'resources: [../base]\nlabels: [{ pairs: { a: b }, includeSelectors: true }]\n' });
    expect(() => renderKustomization(selectors)).toThrow(/includeSelectors not supported/);
    const stray = dir('stray', { 'kustomization.yaml': 'resources: [../base]\npatches: [{ path: p.yaml }]\n', 'p.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: nope }\n' });
    expect(() => renderKustomization(stray)).toThrow(/no ConfigMap nope to patch/);
  });
});
