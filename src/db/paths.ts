import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where built tools (FerretDB) are kept between runs: `TOOL_SYNC_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/tool-sync`, else `~/.cache/tool-sync`. A user cache, never the package's own
 * folder: an install in node_modules may be read-only, and is no place for a 45 MB binary.
 */
export function projectCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TOOL_SYNC_CACHE_DIR !== undefined && env.TOOL_SYNC_CACHE_DIR !== '') return env.TOOL_SYNC_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'tool-sync');
}
