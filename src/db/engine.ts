import mongoose from 'mongoose';

export interface EngineInfo {
  /** `MongoDB` or `FerretDB`. */
  name: 'MongoDB' | 'FerretDB';
  version: string;
}

interface BuildInfo {
  version?: string;
  ferretdbVersion?: string;
}

/** Asks the server what it is: FerretDB answers `buildInfo` with its own version beside MongoDB's. */
export async function detectEngine(uri: string): Promise<EngineInfo> {
  const connection = mongoose.createConnection(uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    await connection.asPromise();
    const info = (await connection.db?.admin().command({ buildInfo: 1 })) as BuildInfo | undefined;
    if (info?.ferretdbVersion !== undefined) return { name: 'FerretDB', version: info.ferretdbVersion };
    return { name: 'MongoDB', version: info?.version ?? 'unknown' };
  } finally {
    await connection.close();
  }
}

/** A URI as it may be printed: without its password. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}
