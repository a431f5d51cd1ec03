import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { uriWithDatabase } from './helpers/cli.js';
import { uniqueDatabaseName } from './helpers/database.js';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
/** Inside the package, so that `import … from 'tool-sync'` resolves to the built package itself (a self-reference). */
const WORK = join(ROOT, '.cache', `readme-${process.pid}`);

interface Block { line: number; code: string }

async function readmeBlocks(): Promise<Block[]> {
  const lines = (await readFile(join(ROOT, 'README.md'), 'utf8')).split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    if (lines[i] !== '```ts') continue;
    const end = lines.indexOf('```', i + 1);
    blocks.push({ line: i + 1, code: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return blocks;
}

const OPTIONS: ts.CompilerOptions = {
  strict: true,
  noUnusedLocals: true,
  noUnusedParameters: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  types: ['node'],
  skipLibCheck: true,
  noEmit: true,
};

afterAll(async () => {
  await rm(WORK, { recursive: true, force: true });
});

async function runBlock(block: Block, name: string): Promise<string> {
  await mkdir(WORK, { recursive: true });
  const file = join(WORK, `${name}.mjs`);
  await writeFile(file, ts.transpileModule(block.code, { compilerOptions: { ...OPTIONS, module: ts.ModuleKind.ESNext, noEmit: false } }).outputText);
  const uri = uriWithDatabase(inject('mongoUri'), uniqueDatabaseName(name));
  const { stdout } = await run(process.execPath, [file], { env: { ...process.env, MONGODB_URI: uri }, timeout: 60_000 });
  return stdout;
}

describe("the README's TypeScript examples", () => {
  it('compile under strict and noUnusedLocals against the built package', async () => {
    const blocks = await readmeBlocks();
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    await mkdir(WORK, { recursive: true });
    const files = await Promise.all(blocks.map(async (block) => {
      const file = join(WORK, `readme-line-${block.line}.ts`);
      await writeFile(file, block.code);
      return file;
    }));
    const program = ts.createProgram(files, OPTIONS);
    const problems = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const where = diagnostic.file === undefined ? '' : `${diagnostic.file.fileName.replace(`${WORK}/`, '')}: `;
      return `${where}${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    });
    expect(problems).toEqual([]);
  }, 120_000);

  it('"Using the model" runs, exits, and prints what its comments say', async () => {
    const block = (await readmeBlocks()).find((candidate) => candidate.code.includes('new ToolModel('));
    if (block === undefined) throw new Error('no "Using the model" example');
    const stdout = await runBlock(block, 'using-the-model');
    const promised = [...block.code.matchAll(/^console\.log\(.*\/\/ (.+)$/gm)].map((match) => match[1]?.trim());
    expect(stdout.trim().split('\n')).toEqual(promised);
  }, 90_000);

  it('every example but those standing in for your own services (`declare`) runs to its end and exits', async () => {
    // The worker example's embedding API and Qdrant are declared, not built: it compiles (above) and is not run.
    const runnable = (await readmeBlocks()).filter((block) => !/^declare /m.test(block.code));
    expect(runnable.length).toBeGreaterThanOrEqual(2);
    for (const block of runnable) await runBlock(block, `readme-line-${block.line}`);
  }, 120_000);
});
