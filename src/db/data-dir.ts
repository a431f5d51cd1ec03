import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The lock file in a persistent data folder, holding the id of the process that uses it. */
export const DATA_DIR_LOCK_FILE = 'tool-sync.lock';

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, and belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One process at a time on a data folder: two servers over the same files would corrupt them or
 * fail obscurely. The lock holds this process's id; a lock left by a process that died is taken
 * over. Gives the function that releases it (also called on process exit).
 */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, DATA_DIR_LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      const release = (): void => {
        process.off('exit', release);
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
        } catch { /* already gone */ }
      };
      // process.exit() (Ctrl-C) skips the stop: the lock goes anyway.
      process.on('exit', release);
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = Number.NaN;
      try { holder = Number(readFileSync(path, 'utf8').trim()); } catch { /* removed meanwhile: try again */ }
      if (processAlive(holder) && holder !== process.pid) {
        throw new Error(`the embedded database in ${dataDir} is in use by another tool-sync command (process ${holder}); wait for it, or pass another --data-dir`);
      }
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not lock the embedded database in ${dataDir} (${path} keeps coming back)`);
}

/** Whether `dir` exists and holds anything. */
export function hasFiles(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}
