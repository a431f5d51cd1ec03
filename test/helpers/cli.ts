import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { runCli as runProgram } from '../../src/cli/program.js';

export { uriWithDatabase } from '../../src/cli/target.js';

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export const CLI_PATH = new URL('../../dist/cli/main.js', import.meta.url).pathname;

/** What a run wrote, and when: one entry per write. */
export type Timeline = { at: number; text: string }[];

/** A stream that keeps what is written to it, and when (not a terminal: no isTTY, as in a pipe). */
function capture(timeline: Timeline): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      text += chunk.toString();
      timeline.push({ at: Date.now(), text: chunk.toString() });
      done();
    },
  });
  return { stream, text: () => text };
}

/**
 * `tool-sync` run in this process: the CLI's program, as the bin runs it, on captured streams and
 * this process's environment with `env` over it (an undefined value removes a variable). For
 * what happens between the command line and the database; what needs the process itself (its
 * exit code, signals, a pipe or a terminal) uses `spawnCli`.
 */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult & { timeline: Timeline }> {
  const timeline: Timeline = [];
  const stdout = capture(timeline);
  const stderr = capture(timeline);
  const code = await runProgram(args, { stdout: stdout.stream, stderr: stderr.stream, env: { ...process.env, ...env }, interrupt: {} });
  return { code, signal: null, stdout: stdout.text(), stderr: stderr.text(), timeline };
}

/**
 * `tool-sync` started in this process and left running (a server, a watch): what it wrote so far,
 * `waitFor` a line it prints, and `interrupt`, the Ctrl-C the bin would pass it. `tty: true` makes
 * its stdout claim to be a terminal.
 */
export function startCliInProcess(args: string[], env: NodeJS.ProcessEnv = {}, options: { tty?: boolean } = {}) {
  const timeline: Timeline = [];
  const stdout = capture(timeline);
  const stderr = capture(timeline);
  if (options.tty === true) Object.assign(stdout.stream, { isTTY: true });
  const interrupt: { handler?: () => void } = {};
  let finished = false;
  const done = runProgram(args, { stdout: stdout.stream, stderr: stderr.stream, env: { ...process.env, ...env }, interrupt })
    .then((code): CliResult & { timeline: Timeline } => ({ code, signal: null, stdout: stdout.text(), stderr: stderr.text(), timeline }))
    .finally(() => { finished = true; });
  return {
    done,
    stdout: stdout.text,
    stderr: stderr.text,
    /** Ctrl-C: false if the command was not listening for it. */
    interrupt: (): boolean => {
      const handler = interrupt.handler;
      interrupt.handler = undefined;
      handler?.();
      return handler !== undefined;
    },
    /** The first match of `pattern` in stdout (or stderr), once written; rejects if the command ends first. */
    async waitFor(pattern: RegExp, where: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpExecArray> {
      for (;;) {
        const match = pattern.exec(where === 'stdout' ? stdout.text() : stderr.text());
        if (match !== null) return match;
        if (finished) throw new Error(`the command ended without printing ${String(pattern)}: ${stdout.text()}${stderr.text()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
}

/** Starts `tool-sync` (the built bin) as a child process. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string; replaceEnv?: boolean } = {}) {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: options.replaceEnv === true ? env : { ...process.env, ...env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => { resolve({ code, signal, stdout, stderr }); });
  });
  return { child, done, output: () => stdout + stderr, stdout: () => stdout };
}

/** `tool-sync` (the built bin) as a process of its own, to its end. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string; replaceEnv?: boolean } = {}): Promise<CliResult> {
  return startCli(args, env, options).done;
}

/** No stack trace: no line that looks like a frame (`    at fn (file:line:col)`). */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+:\d+:\d+\)?$/m.test(text);
}
