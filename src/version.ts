/** The package's own identity, read once: logs, dead-letter headers and metrics name the scorer version. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The installed package's root (src/ in development, dist/ when compiled: both one level down). */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

export const PACKAGE_NAME: string = pkg.name;
export const SCORER_VERSION: string = pkg.version;
