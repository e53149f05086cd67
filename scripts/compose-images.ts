/**
 * Builds the local images of the compose stack's podman mode (docker-compose.local.yml), each
 * only when its inputs changed (scripts/compose/build.ts), and prints what it did:
 *
 *   npm run compose:images
 *
 * Installs podman, docker-compose, debootstrap and runc with apt-get first if they are missing
 * (as root). Exit codes: 0 built or reused every image, 1 a build failed, 2 the tools cannot be had.
 */
import { UsageError, ensurePodmanTools } from './compose/engine.js';
import { buildImages } from './compose/images.js';
import { secondsSince } from './compose/run.js';

async function composeImages(): Promise<void> {
  const started = Date.now();
  await ensurePodmanTools();
  const results = await buildImages();
  for (const r of results) console.log(`compose-images: ${r.tag.padEnd(52)} ${r.cached ? 'cached' : `built in ${r.seconds} s`}, ${Math.round(r.sizeBytes / 1e6)} MB`);
  console.log(`compose-images: ${results.filter((r) => !r.cached).length} built, ${results.filter((r) => r.cached).length} cached, ${secondsSince(started)} s`);
}

await composeImages().catch((err: unknown) => {
  console.error(`compose-images: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
