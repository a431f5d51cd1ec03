import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildProgress, formatDuration } from '../../src/db/build-progress.js';
import { ensureFerretDbBinary, ferretDbBinaryPath } from '../../src/db/ferretdb.js';

/**
 * A `go` that answers the build's commands as Go does, quickly: the module's folder, the lists
 * of modules and packages, `-x` download lines and `-v` package lines, slowly enough that the
 * progress timer has to speak between them. FAKE_GO_FAIL=build makes the compile fail.
 */
const FAKE_GO = `#!/bin/sh
root="$(dirname "$0")"
case "$*" in
  "version") echo "go version go1.26.8 linux/amd64" ;;
  "mod download -json "*)
    mkdir -p "$root/module/build/version" "$root/module/cmd/ferretdb"
    chmod 555 "$root/module/build/version"
    printf '{"Path": "github.com/FerretDB/FerretDB", "Dir": "%s"}\\n' "$root/module" ;;
  "list -m "*) for i in 1 2 3 4 5 6; do echo "example.com/module$i"; done ;;
  "mod download -x")
    for i in 1 2 3 4 5 6; do sleep 0.15; echo "# get https://proxy.golang.org/example.com/module$i/@v/v1.0.0.zip: 200 OK (0.1s)" >&2; done ;;
  "list -deps ./cmd/ferretdb") for i in 1 2 3 4 5 6 7 8 9 10; do echo "example.com/pkg$i"; done ;;
  "build -v -trimpath -o "*)
    [ "$FAKE_GO_FAIL" = build ] && { echo "example.com/pkg1" >&2; echo "pkg2.go:3: undefined: x" >&2; exit 1; }
    [ -f build/version/version.txt ] || { echo "no version.txt" >&2; exit 1; }
    for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.1; echo "example.com/pkg$i" >&2; done
    printf 'binary' > "$5" ;;
  *) echo "fake go: unexpected: $*" >&2; exit 2 ;;
esac
`;

let work = '';
const saved = { ...process.env };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tool-sync-fake-go-'));
  await writeFile(join(work, 'go'), FAKE_GO);
  await chmod(join(work, 'go'), 0o755);
});
// What a test set in the environment goes: the variables are the ones of before.
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) Reflect.deleteProperty(process.env, key);
  Object.assign(process.env, saved);
});
afterAll(async () => {
  await chmod(join(work, 'module', 'build', 'version'), 0o755).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

/** The build with the fake `go` first on PATH, into a cache folder of its own; the lines logged and when. */
async function build(cache: string, everyMs: number): Promise<{ lines: { at: number; text: string }[]; result: unknown }> {
  process.env.PATH = `${work}${delimiter}${saved.PATH ?? ''}`;
  process.env.TOOL_SYNC_CACHE_DIR = join(work, cache);
  const lines: { at: number; text: string }[] = [];
  const result = await ensureFerretDbBinary((text) => { lines.push({ at: Date.now(), text }); }, { progressEveryMs: everyMs }).then((path) => path, (error: unknown) => error);
  return { lines, result };
}

describe('building FerretDB', () => {
  it('says what it does at least every interval, with counts from Go\'s output and an estimate, and puts the binary in place', async () => {
    const started = Date.now();
    const { lines, result } = await build('cache-ok', 250);
    expect(result).toBe(ferretDbBinaryPath());
    expect(await readFile(ferretDbBinaryPath(), 'utf8')).toBe('binary');
    const texts = lines.map((line) => line.text);
    expect(texts[0]).toMatch(/^building FerretDB v1\.24\.2 with Go into .*: once, then reused; a cold build took about 5 min here/);
    expect(texts.some((text) => /^building FerretDB: downloading its Go modules, \d of about 6 modules \(\d+ s so far, (about .+ left|nearly done)\)$/.test(text))).toBe(true);
    expect(texts.some((text) => /^building FerretDB: compiling, \d+ of about 10 packages \(\d+ s so far, (about .+ left|nearly done)\)$/.test(text))).toBe(true);
    expect(texts.at(-1)).toMatch(/^built FerretDB in \d+ s: /);
    // Never silent for longer than the interval (and the timer's check, a fraction of it).
    const times = [started, ...lines.map((line) => line.at)];
    const gaps = times.slice(1).map((at, i) => at - (times[i] ?? at));
    expect(Math.max(...gaps), texts.join('\n')).toBeLessThan(250 + 250 + 200);
  });

  it('a failed compile says why, and leaves no binary behind', async () => {
    process.env.FAKE_GO_FAIL = 'build';
    const { result } = await build('cache-fail', 250);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/`go build -v -trimpath -o .* \.\/cmd\/ferretdb` failed \(exit 1\): .*undefined: x/s);
    expect(existsSync(ferretDbBinaryPath())).toBe(false);
  });
});

describe('the build\'s estimate', () => {
  it('starts from what each step took when measured, then follows the step\'s own rate', () => {
    let now = 0;
    const logged: string[] = [];
    const progress = buildProgress({ log: (line) => logged.push(line), now: () => now });
    try {
      progress.step('download', 100);
      expect(logged.at(-1)).toBe('building FerretDB: downloading its Go modules, 0 of about 100 modules (0 s so far, about 5 min 20 s left)');
      now = 30_000;
      for (let i = 0; i < 50; i += 1) progress.advance();
      // Half the modules in 30 s: 30 s more for them, then the compile's measured 2 min 20 s.
      expect(progress.line()).toBe('building FerretDB: downloading its Go modules, 50 of about 100 modules (30 s so far, about 2 min 50 s left)');
      progress.step('compile', 400);
      now = 90_000;
      for (let i = 0; i < 300; i += 1) progress.advance();
      // 300 packages in the minute since the compile began: 20 s for the rest, then about 15 s of linking.
      expect(progress.line()).toBe('building FerretDB: compiling, 300 of about 400 packages (1 min 30 s so far, about 35 s left)');
      for (let i = 0; i < 200; i += 1) progress.advance();
      // More than Go listed (std packages counted differently): the link is left, never a negative estimate.
      expect(progress.line()).toBe('building FerretDB: compiling, 400 of about 400 packages (1 min 30 s so far, about 15 s left)');
    } finally {
      progress.stop();
    }
  });

  it('formats durations as minutes and seconds', () => {
    expect([0, 4_400, 59_600, 60_000, 95_000, 320_000].map(formatDuration)).toEqual(['0 s', '4 s', '1 min', '1 min', '1 min 35 s', '5 min 20 s']);
  });
});
