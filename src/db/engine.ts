import mongoose from 'mongoose';

export interface EngineInfo {
  /** `MongoDB` or `FerretDB`. */
  name: 'MongoDB' | 'FerretDB';
  version: string;
}

export interface BuildInfo {
  version?: string;
  /** FerretDB 1.x. */
  ferretdbVersion?: string;
  /** FerretDB 2.x (on PostgreSQL with DocumentDB). */
  ferretdb?: { version?: string };
}

/** What `buildInfo` says the server is: FerretDB (1.x or 2.x) answers with its own version beside MongoDB's. */
export function engineFromBuildInfo(info: BuildInfo | undefined): EngineInfo {
  const ferretDb = info?.ferretdbVersion ?? info?.ferretdb?.version;
  if (ferretDb !== undefined) return { name: 'FerretDB', version: ferretDb };
  return { name: 'MongoDB', version: info?.version ?? 'unknown' };
}

/** Asks the server what it is: FerretDB answers `buildInfo` with its own version beside MongoDB's. */
export async function detectEngine(uri: string): Promise<EngineInfo> {
  const connection = mongoose.createConnection(uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    await connection.asPromise();
    return engineFromBuildInfo((await connection.db?.admin().command({ buildInfo: 1 })));
  } finally {
    await connection.close();
  }
}

/** A URI as it may be printed: without its password. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}
