#!/usr/bin/env node
/** Builds the fallback FerretDB once, ahead of the tests (`npm run db:prepare`). */
import { ensureFerretDbBinary } from './ferretdb.js';

const binary = await ensureFerretDbBinary((line) => { process.stderr.write(`[tool-sync db] ${line}\n`); });
process.stdout.write(`FerretDB ready: ${binary}\n`);
