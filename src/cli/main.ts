#!/usr/bin/env node
/** The `tool-sync` bin: the CLI (program.ts) on this process's arguments, streams, environment and signals. */
import { runCli, type CliIo } from './program.js';

// A reader that stops early (`tool-sync status | head`) ends the output, not the command, and is no stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') process.stderr.write(`tool-sync: cannot write the output: ${error.message}\n`);
});

const io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, interrupt: {} };

/** The first Ctrl-C goes to the command that asked for it (a migration, `tool-sync db`); else, and the second time, it ends the process. */
process.on('SIGINT', () => {
  const handler = io.interrupt.handler;
  io.interrupt.handler = undefined;
  if (handler !== undefined) {
    handler();
    return;
  }
  process.stderr.write('\ntool-sync: interrupted; nothing half-written is left behind — run the same command again to resume\n');
  process.exit(130);
});

/**
 * SIGTERM (a service manager, `kill`) stops a command that asked for Ctrl-C the way Ctrl-C does
 * (status --serve closes its server and exits 0); else the process ends as SIGTERM ends it by default.
 */
process.on('SIGTERM', () => {
  const handler = io.interrupt.handler;
  io.interrupt.handler = undefined;
  if (handler !== undefined) {
    handler();
    return;
  }
  process.removeAllListeners('SIGTERM');
  process.kill(process.pid, 'SIGTERM');
});

process.exitCode = await runCli(process.argv.slice(2), io);
