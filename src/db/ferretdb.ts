import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildProgress, formatDuration } from './build-progress.js';
import { projectCacheDir } from './paths.js';

const execFileAsync = promisify(execFile);

export const FERRETDB_MODULE = 'github.com/FerretDB/FerretDB';
/** Go's GOGC for the FerretDB this module starts, unless GOGC is set (see startFerretDb). */
export const FERRETDB_GOGC = '400';
export const FERRETDB_VERSION = 'v1.24.2';

/** Where FerretDB is built to, in the user cache folder (see projectCacheDir). */
export function ferretDbBinaryPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(projectCacheDir(env), `ferretdb-${FERRETDB_VERSION}`, 'ferretdb');
}

const GO_MISSING = 'FerretDB has to be built with Go, and no `go` command was found on PATH. Install Go 1.24 or newer, or set MONGODB_URI.';

async function go(args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync('go', args, { cwd, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    if (failure.code === 'ENOENT') {
      throw new Error(GO_MISSING);
    }
    throw new Error(`\`go ${args.join(' ')}\` failed: ${(failure.stderr ?? failure.message).trim().slice(-2000)}`);
  }
}

/** Whether a `go` command is on PATH (to build FerretDB with); one that is there but fails is left to the build to report. */
export async function goAvailable(): Promise<boolean> {
  try {
    await execFileAsync('go', ['version']);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Runs `go args` in `cwd`, handing each line it writes (stdout and stderr) to `onLine` as it comes. */
function goStreaming(args: string[], cwd: string, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const lines = (chunk: Buffer, pending: { text: string }): void => {
      pending.text += chunk.toString();
      const parts = pending.text.split('\n');
      pending.text = parts.pop() ?? '';
      for (const line of parts) {
        tail = `${tail}${line}\n`.slice(-4000);
        onLine(line);
      }
    };
    const out = { text: '' };
    const err = { text: '' };
    child.stdout.on('data', (chunk: Buffer) => { lines(chunk, out); });
    child.stderr.on('data', (chunk: Buffer) => { lines(chunk, err); });
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? new Error(GO_MISSING) : error);
    });
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`\`go ${args.join(' ')}\` failed (exit ${String(code)}): ${`${tail}${out.text}${err.text}`.trim().slice(-2000)}`));
    });
  });
}

/** How many lines `go args` prints (a count of modules or packages); undefined when it fails. */
async function countLines(args: string[], cwd: string): Promise<number | undefined> {
  try {
    return (await go(args, cwd)).split('\n').filter((line) => line.trim() !== '').length;
  } catch {
    return undefined;
  }
}

export interface FerretDbBuildOptions {
  /** The longest silence between two progress lines (default 10 s). */
  progressEveryMs?: number;
  /** Where the user cache folder is (TOOL_SYNC_CACHE_DIR, XDG_CACHE_HOME); process.env by default. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds FerretDB from its module through the Go module proxy, once, into the project's cache.
 *
 * A plain `go install …/cmd/ferretdb@v1.24.2` builds a binary that panics at start: its version
 * check reads `build/version/version.txt`, which FerretDB's release tooling generates and the
 * module zip does not contain. So the module is downloaded with `go mod download`, copied,
 * given that one file, and built from the copy: the same code, reporting its real version.
 * Its modules are downloaded (`-x` names each) and then compiled (`-v` names each package), so
 * that a line with the step, a count and an estimate comes at least every 10 s.
 */
export async function ensureFerretDbBinary(log: (line: string) => void, options: FerretDbBuildOptions = {}): Promise<string> {
  const binary = ferretDbBinaryPath(options.env);
  if (existsSync(binary)) return binary;
  log(`building FerretDB ${FERRETDB_VERSION} with Go into ${binary}: once, then reused; `
    + `a cold build took about 5 min here (about 640 MB of Go modules), about 2 min 30 s with the modules already downloaded`);
  const progress = buildProgress({ log, everyMs: options.progressEveryMs });
  const work = await mkdtemp(join(tmpdir(), 'ferretdb-build-'));
  try {
    const download = JSON.parse(await go(['mod', 'download', '-json', `${FERRETDB_MODULE}@${FERRETDB_VERSION}`])) as { Dir?: string; Error?: string };
    if (download.Dir === undefined) throw new Error(`go mod download ${FERRETDB_MODULE}@${FERRETDB_VERSION} failed: ${download.Error ?? 'no directory'}`);
    await mkdir(join(binary, '..'), { recursive: true });
    const source = join(work, 'src');
    await cp(download.Dir, source, { recursive: true });
    // The module cache is read-only; the copy keeps its modes.
    await chmod(join(source, 'build', 'version'), 0o755);
    await writeFile(join(source, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);

    // Each module's zip is one `# get …/@v/<version>.zip: 200 OK` line of -x (none when already downloaded).
    progress.step('download', await countLines(['list', '-m', '-f', '{{if not .Main}}{{.Path}}{{end}}', 'all'], source));
    await goStreaming(['mod', 'download', '-x'], source, (line) => { if (/\.zip: \d{3} /.test(line)) progress.advance(); });

    // -v names each package as it is compiled (those in Go's build cache are not compiled again).
    progress.step('compile', await countLines(['list', '-deps', './cmd/ferretdb'], source));
    const built = join(work, 'ferretdb');
    await goStreaming(['build', '-v', '-trimpath', '-o', built, './cmd/ferretdb'], source, (line) => {
      if (/^[\w.\-/]+$/.test(line.trim())) progress.advance();
    });
    // Renamed into place only when complete, so an interrupted build never leaves a broken binary.
    await rename(built, binary);
    log(`built FerretDB in ${formatDuration(progress.elapsedMs())}: ${binary}`);
  } finally {
    progress.stop();
    await rm(work, { recursive: true, force: true });
  }
  return binary;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => { resolve(port); });
    });
  });
}

function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { socket.destroy(); resolve(false); });
  });
}

/**
 * `sh` gives a background job /dev/null as stdin, so the watcher reads our pipe through fd 3;
 * when the pipe closes (we stopped or died) it kills the exec'd FerretDB, which kept the shell's pid.
 */
const GUARD_SCRIPT = 'exec 3<&0; ( cat <&3 >/dev/null; kill "$$" 2>/dev/null ) & exec "$@" 3<&-';

/** Whether a PostgreSQL server answers at the URL's host and port (nothing more is checked). */
export async function postgresqlReachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return canConnect(port === '' ? 5432 : Number(port), hostname === '' ? '127.0.0.1' : hostname);
}

export interface RunningFerretDb {
  uri: string;
  stop(): Promise<void>;
}

export interface FerretDbOptions {
  /** SQLite's folder (a fresh temporary one by default). */
  dataDir?: string;
  port?: number;
  /** Use this PostgreSQL database as the backend instead of SQLite. */
  postgresqlUrl?: string;
  extraArgs?: string[];
}

/**
 * Starts FerretDB on 127.0.0.1 on a free port, SQLite backend in a fresh temporary folder
 * unless `postgresqlUrl` is given. It runs under a small shell guard that stops it when this
 * process's end of its stdin pipe closes, so it dies with us even when we are killed with SIGKILL.
 */
export async function startFerretDb(binary: string, options: FerretDbOptions = {}): Promise<RunningFerretDb> {
  // A folder the caller gives is the caller's: kept on stop, so a restart finds its data.
  const ownsData = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'tool-sync-ferretdb-')));
  await mkdir(join(dataDir, 'sqlite'), { recursive: true });
  // A port that answers already is another server's: waiting for it to answer would take it for FerretDB.
  if (options.port !== undefined && (await canConnect(options.port))) {
    if (ownsData) await rm(dataDir, { recursive: true, force: true });
    throw new Error(`port ${options.port} on 127.0.0.1 is in use by another server: choose another port`);
  }
  const port = options.port ?? (await freePort());
  // A temporary folder's data goes with the server: SQLite need not wait for the disk on every commit
  // (writes took 20-35 % less time, measured here); a folder the caller keeps gets SQLite's default.
  const sqliteOptions = ownsData ? '?_pragma=synchronous(off)' : '';
  const backend = options.postgresqlUrl === undefined
    ? ['--handler=sqlite', `--sqlite-url=file:${join(dataDir, 'sqlite')}/${sqliteOptions}`]
    : ['--handler=postgresql', `--postgresql-url=${options.postgresqlUrl}`];
  const args = [
    ...backend,
    `--listen-addr=127.0.0.1:${port}`,
    '--telemetry=disable',
    '--debug-addr=-',
    `--state-dir=${dataDir}`,
    '--log-level=error',
    ...(options.extraArgs ?? []),
  ];
  const child: ChildProcess = spawn('sh', ['-c', GUARD_SCRIPT, 'ferretdb-guard', binary, ...args], {
    stdio: ['pipe', 'ignore', 'pipe'],
    // FerretDB decodes whole collections for most queries: Go's collector ran often. GOGC=400 (a larger
    // heap between collections; about 130 MB at its peak in the demo) took a quarter less of its CPU,
    // measured here. A GOGC of the caller's is kept.
    env: { ...process.env, GOGC: process.env.GOGC ?? FERRETDB_GOGC },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;

  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (!running() || Date.now() > deadline) {
      child.kill('SIGKILL');
      if (ownsData) await rm(dataDir, { recursive: true, force: true });
      throw new Error(`FerretDB did not start on 127.0.0.1:${port}: ${stderr.trim().slice(-1000) || 'no output'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Nothing keeps the event loop alive for FerretDB's sake: it lives exactly as long as we do.
  child.unref();
  for (const pipe of [child.stdin, child.stderr]) (pipe as Partial<Socket> | null)?.unref?.();

  return {
    uri: `mongodb://127.0.0.1:${port}/`,
    async stop() {
      if (running()) {
        // Unref'd while running; waiting for its exit must keep this process alive.
        child.ref();
        child.stdin?.end();
        child.kill('SIGTERM');
        await exited;
      }
      if (ownsData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
