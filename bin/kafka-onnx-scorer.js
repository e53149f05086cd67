#!/usr/bin/env node
// The installed command: the compiled scorer (dist/ is built by `npm run build`, and on `npm ci` by `prepare`).
import '../dist/cli.js';
