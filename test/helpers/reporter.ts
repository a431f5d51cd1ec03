import type { Reporter, TestModule, TestSpecification } from 'vitest/node';

/** How often, at the least, a run whose output is not a terminal says what it is doing. */
const HEARTBEAT_MS = 30_000;
const SHOWN = 10;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * Beside vitest's own reporter: where the output is not a terminal (CI, a log), a line whenever a
 * test file ends, with how many are done, and a line every 30 s naming the files still running;
 * at the end, always, the slowest ten tests and files, so that a regression in the suite's time
 * shows in every run.
 */
export default class SuiteTimeReporter implements Reporter {
  private readonly startedAt = Date.now();
  private total = 0;
  private done = 0;
  private readonly running = new Map<string, number>();
  private lastLineAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  /** On a terminal vitest's own reporter shows the files running; elsewhere it stays silent while one runs. */
  private readonly interactive = process.stdout.isTTY;

  private say(line: string): void {
    this.lastLineAt = Date.now();
    process.stdout.write(`${line}\n`);
  }

  private clock(): string {
    const elapsed = Math.round((Date.now() - this.startedAt) / 1000);
    return `${Math.floor(elapsed / 60)}:${String(elapsed % 60).padStart(2, '0')}`;
  }

  onTestRunStart(specifications: readonly TestSpecification[]): void {
    this.total = specifications.length;
    if (this.interactive) return;
    this.timer = setInterval(() => {
      if (Date.now() - this.lastLineAt < HEARTBEAT_MS) return;
      const files = [...this.running.entries()].map(([file, since]) => `${file} (${seconds(Date.now() - since)})`);
      this.say(`[${this.clock()}] ${this.done}/${this.total} files done; running: ${files.join(', ') || 'starting'}`);
    }, 1_000);
    this.timer.unref();
  }

  onTestModuleStart(module: TestModule): void {
    this.running.set(module.relativeModuleId, Date.now());
  }

  onTestModuleEnd(module: TestModule): void {
    this.running.delete(module.relativeModuleId);
    this.done += 1;
    if (this.interactive) return;
    const state = module.state() === 'failed' ? 'FAILED' : 'done';
    this.say(`[${this.clock()}] ${this.done}/${this.total} ${state} ${module.relativeModuleId} (${seconds(module.diagnostic().duration)})`);
  }

  onTestRunEnd(modules: readonly TestModule[]): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    const tests = modules.flatMap((module) => [...module.children.allTests()].map((test) => ({
      name: `${module.relativeModuleId} > ${test.fullName}`,
      ms: test.diagnostic()?.duration ?? 0,
    })));
    const files = modules.map((module) => ({ name: module.relativeModuleId, ms: module.diagnostic().duration }));
    const table = (rows: { name: string; ms: number }[]): string =>
      rows.sort((a, b) => b.ms - a.ms).slice(0, SHOWN).map(({ name, ms }) => `  ${seconds(ms).padStart(8)}  ${name}`).join('\n');
    process.stdout.write(`\nSlowest ${SHOWN} tests:\n${table(tests)}\nSlowest ${SHOWN} files:\n${table(files)}\n`);
  }
}
