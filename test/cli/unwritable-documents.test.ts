import mongoose from 'mongoose';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { ToolModel } from '../../src/index.js';
import { skipReason } from '../helpers/capabilities.js';
import { hasStackTrace, runCli, uriWithDatabase } from '../helpers/cli.js';
import { engine, useTestDatabase } from '../helpers/database.js';
import { insertRaw, rawTool, toolInput } from '../helpers/tools.js';
import { nearLimitLegacyTool, nearLimitUnsupported } from '../migrations/near-limit.js';

const database = useTestDatabase(import.meta.url);
const uri = (): string => uriWithDatabase(inject('mongoUri'), database.name);

let nearLimitSkip: string | undefined;
beforeAll(async () => {
  nearLimitSkip = await nearLimitUnsupported();
}, 120_000);

describe('tool-sync backfill with a document it cannot write', () => {
  it('lists it with _id, id and reason, migrates the others, and exits 2 without a stack trace', { timeout: 180_000 }, async (context) => {
    if (nearLimitSkip !== undefined) {
      skipReason(nearLimitSkip, engine());
      context.skip();
    }
    await ToolModel.collection.deleteMany({});
    await insertRaw({ _id: new mongoose.Types.ObjectId(), ...toolInput({ id: 'cli-before' }) });
    const big = nearLimitLegacyTool('cli-near-limit');
    await insertRaw(big);
    for (const id of ['cli-after-1', 'cli-after-2']) await insertRaw({ _id: new mongoose.Types.ObjectId(), ...toolInput({ id }) });

    // Batches of 2: [cli-before, cli-near-limit], [cli-after-1, cli-after-2].
    const result = await runCli(['backfill', '--batch-size', '2', '--uri', uri()]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toMatch(/scanned: +4/);
    expect(result.stdout).toMatch(/updated: +3/);
    expect(result.stdout).toMatch(/failed: +1/);
    const listed = result.stdout.split('\n').filter((line) => line.includes(big._id.toHexString()));
    expect(listed).toHaveLength(1);
    // Refused by the driver or the server, in its own words (each engine words it otherwise): listed, with why.
    expect(listed[0]).toMatch(new RegExp(`^ +_id ${big._id.toHexString()} \\(id cli-near-limit\\): the (driver refused to send|server refused) the write: `));
    expect(hasStackTrace(result.stdout + result.stderr)).toBe(false);
    expect(result.stderr).not.toMatch(/^tool-sync: (?!server )/m);
    for (const id of ['cli-before', 'cli-after-1', 'cli-after-2']) {
      expect(((await rawTool({ id }))?.syncMetadata as { overallStatus?: unknown } | undefined)?.overallStatus, id).toBe('pending');
    }
    expect(await rawTool({ _id: big._id, syncMetadata: { $exists: true } })).toBeNull();
  });
});
