/** 1. Content hashing: the package's four hashes per tool against bare SHA-256 over the same bytes. */
import { createHash } from 'node:crypto';
import { canonicalContent, computeContentHashes } from '../src/sync/content-hash.js';
import { SYNC_COLLECTION_NAMES } from '../src/sync/vocabulary.js';
import type { SeedTool } from '../src/cli/seed-data.js';
import { median, perSecond, round, timed } from './measure.js';

export interface HashingResult {
  tools: number;
  rounds: number;
  /** Mean canonical input per collection hash. */
  bytesPerHash: number;
  packageHashesPerSecond: number;
  rawSha256PerSecond: number;
  /** How many times longer a package hash takes than bare SHA-256 of its canonical bytes. */
  ratio: number;
}

const ROUNDS = 7;

export async function benchHashing(tools: SeedTool[]): Promise<HashingResult> {
  // The exact bytes the package hashes, prepared up front: the baseline only hashes.
  const inputs = tools.flatMap((tool) => SYNC_COLLECTION_NAMES.map((name) => canonicalContent(tool, name)));
  const hashes = inputs.length;
  let sink = 0;
  const packageMs: number[] = [];
  const rawMs: number[] = [];
  // Interleaved rounds: a noisy moment of the machine hits both sides alike.
  for (let round_ = 0; round_ < ROUNDS; round_ += 1) {
    packageMs.push((await timed(() => {
      for (const tool of tools) sink += computeContentHashes(tool).tools.length;
    })).ms);
    rawMs.push((await timed(() => {
      for (const input of inputs) sink += createHash('sha256').update(input, 'utf8').digest('hex').length;
    })).ms);
  }
  if (sink === 0) throw new Error('hashing produced nothing');
  const packageRate = perSecond(hashes, median(packageMs));
  const rawRate = perSecond(hashes, median(rawMs));
  return {
    tools: tools.length,
    rounds: ROUNDS,
    bytesPerHash: round(inputs.reduce((sum, input) => sum + Buffer.byteLength(input), 0) / hashes, 0),
    packageHashesPerSecond: packageRate,
    rawSha256PerSecond: rawRate,
    ratio: round(rawRate / packageRate, 2),
  };
}
