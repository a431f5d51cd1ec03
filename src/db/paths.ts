import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root: the nearest folder above this file holding a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** Where built tools (FerretDB) are kept between runs; `TOOL_SYNC_CACHE_DIR` overrides it. */
export function projectCacheDir(): string {
  return process.env.TOOL_SYNC_CACHE_DIR ?? join(packageRoot(), '.cache');
}
