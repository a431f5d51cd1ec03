#!/usr/bin/env node
import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { openDatabase } from './connection.js';
import { runDemo } from './commands/demo.js';
import { describeFailure } from './errors.js';

const print = (text: string): void => { process.stdout.write(`${text}\n`); };

interface GlobalOptions { uri?: string }

const program = new Command()
  .name('tool-sync')
  .description('Keep tool records and their vector collections honestly in sync.')
  .option('--uri <uri>', 'MongoDB connection string (default: MONGODB_URI, else an embedded database)')
  .showHelpAfterError()
  .exitOverride();

program
  .command('demo')
  .description('run the main job on the embedded database (or --uri): create tools and show their sync metadata')
  .action(async () => {
    const { uri } = program.opts<GlobalOptions>();
    const database = await openDatabase({ uri, defaultDbName: 'tool_sync_demo' });
    try {
      print(`database: ${database.description}\n`);
      await runDemo(print);
    } finally {
      await database.close();
    }
  });

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`tool-sync: ${describeFailure(error)}\n`);
    process.exitCode = 1;
  }
}
