/**
 * Renders a kustomization directory as `kubectl kustomize` (kustomize v5) does, for the part of
 * kustomize this repository's k8s/ uses, so the deployment tests need no binary and never skip:
 * `resources` (files and directories), `namespace`, `labels` (metadata only, or with templates),
 * `images` and `patches` given by `path` (strategic merge). Any other field, or a patch that
 * matches nothing, throws: a kustomization that grows past this subset fails the tests loudly
 * instead of being rendered wrong.
 *
 * Order as in kustomize's build of one kustomization: resources (each base built first with its
 * own transformers), then patches, namespace, labels, images (api/internal/target/kusttarget.go).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonMap = { [k: string]: Json };

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  patches?: { path?: string; [k: string]: unknown }[];
}

const FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);
/** Kinds without a namespace (the namespace transformer leaves them alone). */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass', 'IngressClass', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'APIService']);
/**
 * Built-in kinds' lists that a strategic merge patch merges item by item, and the key (the
 * `patchMergeKey` of the Kubernetes API schema); every other list is replaced. Custom resources
 * (KEDA, prometheus-operator) have no schema in kustomize: their lists are always replaced.
 */
const MERGE_KEYS: Record<string, (item: JsonMap) => string> = {
  containers: () => 'name',
  initContainers: () => 'name',
  ephemeralContainers: () => 'name',
  env: () => 'name',
  volumes: () => 'name',
  volumeMounts: () => 'mountPath',
  volumeDevices: () => 'devicePath',
  imagePullSecrets: () => 'name',
  hostAliases: () => 'ip',
  topologySpreadConstraints: () => 'topologyKey',
  // A container's ports merge by containerPort, a Service's by port.
  ports: (item) => ('containerPort' in item ? 'containerPort' : 'port'),
};
/** API groups of the built-in kinds: the core group (no group), a dotless one (apps, batch, ...) or *.k8s.io. */
const isBuiltIn = (apiVersion: string): boolean => !apiVersion.includes('/') || /^([a-z0-9-]+|[a-z0-9.-]+\.k8s\.io)\//.test(apiVersion);

const isMap = (v: unknown): v is JsonMap => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every document of a YAML file, parse errors thrown with the file's name; empty documents dropped. */
export function readYamlDocs(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  const k = parse(readFileSync(file, 'utf8')) as Kustomization;
  const unknown = Object.keys(k).filter((f) => !FIELDS.has(f));
  if (unknown.length > 0) throw new Error(`${file}: ${unknown.join(', ')} not supported by test/helpers/kustomize.ts`);
  let objs = (k.resources ?? []).flatMap((r) => {
    const path = resolve(dir, r);
    return existsSync(path) && statSync(path).isDirectory() ? renderKustomization(path) : readYamlDocs(path);
  });
  for (const p of k.patches ?? []) objs = applyPatchFile(objs, dir, p);
  if (k.namespace !== undefined) for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  for (const l of k.labels ?? []) {
    if (l.includeSelectors === true) throw new Error(`${file}: labels.includeSelectors not supported by test/helpers/kustomize.ts`);
    for (const o of objs) {
      o.metadata.labels = { ...o.metadata.labels, ...l.pairs };
      const template = isMap(o.spec) && isMap(o.spec.template) ? o.spec.template : undefined;
      if (l.includeTemplates === true && template !== undefined) {
        const meta = isMap(template.metadata) ? template.metadata : (template.metadata = {});
        meta.labels = { ...(isMap(meta.labels) ? meta.labels : {}), ...l.pairs };
      }
    }
  }
  for (const image of k.images ?? []) for (const o of objs) setImages(o as unknown as JsonMap, image);
  return objs;
}

function applyPatchFile(objs: K8sObject[], dir: string, p: { path?: string; [k: string]: unknown }): K8sObject[] {
  const others = Object.keys(p).filter((f) => f !== 'path');
  if (p.path === undefined || others.length > 0) throw new Error(`${dir}: patches with ${['path', ...others].join(', ')}: only { path } is supported by test/helpers/kustomize.ts`);
  for (const patch of readYamlDocs(resolve(dir, p.path))) {
    const at = objs.findIndex((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name && o.metadata.namespace === patch.metadata.namespace);
    if (at < 0) throw new Error(`${dir}/${p.path}: no ${patch.kind} ${patch.metadata.name} to patch`);
    objs[at] = merge(objs[at] as unknown as Json, patch as unknown as Json, isBuiltIn(patch.apiVersion)) as unknown as K8sObject;
  }
  return objs;
}

/** A strategic merge patch: maps merge, null deletes, lists replace unless MERGE_KEYS lists them (built-in kinds only). */
function merge(base: Json | undefined, patch: Json, builtIn: boolean, field = ''): Json {
  if (isMap(patch)) {
    const out: JsonMap = isMap(base) ? { ...base } : {};
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = merge(out[k], v, builtIn, k);
    }
    return out;
  }
  const keyOf = MERGE_KEYS[field];
  if (!builtIn || keyOf === undefined || !Array.isArray(patch) || !Array.isArray(base)) return patch;
  const items = [...base, ...patch];
  if (!items.every(isMap)) return patch;
  const key = (item: JsonMap) => item[keyOf(item)];
  // Items new to the list come first, the base's follow in their order (as kubectl renders it).
  const added = (patch as JsonMap[]).filter((p) => !(base as JsonMap[]).some((b) => key(b) === key(p)));
  return [
    ...added,
    ...(base as JsonMap[]).map((b) => {
      const p = (patch as JsonMap[]).find((item) => key(item) === key(b));
      return p === undefined ? b : merge(b, p, builtIn, field);
    }),
  ];
}

/** kustomize's image transformer: every container image named `name` gets the new name, tag or digest. */
function setImages(node: Json, image: NonNullable<Kustomization['images']>[number]): void {
  if (Array.isArray(node)) {
    for (const item of node) setImages(item, image);
    return;
  }
  if (!isMap(node)) return;
  for (const [k, v] of Object.entries(node)) {
    if ((k === 'containers' || k === 'initContainers') && Array.isArray(v)) {
      for (const c of v) {
        if (!isMap(c) || typeof c.image !== 'string') continue;
        const m = /^([^:@]+(?::\d+\/[^:@]+)?)(?::([^@]+))?(?:@(.+))?$/.exec(c.image);
        if (m === null || m[1] !== image.name) continue;
        const tag = image.digest !== undefined ? `@${image.digest}` : image.newTag !== undefined ? `:${image.newTag}` : m[2] !== undefined ? `:${m[2]}` : m[3] !== undefined ? `@${m[3]}` : '';
        c.image = `${image.newName ?? m[1]}${tag}`;
      }
    }
    setImages(v, image);
  }
}
