/** An argument of a sync operation that cannot be used: names the argument and the value. */
export class SyncArgumentError extends TypeError {
  override name = 'SyncArgumentError';
  constructor(argument: string, value: unknown, expected: string) {
    super(`${argument}: expected ${expected}, got ${describeValue(value)}`);
  }
}

/** A transition was asked for a tool that does not exist: nothing was written. */
export class ToolNotFoundError extends Error {
  override name = 'ToolNotFoundError';
  constructor(readonly toolId: string) {
    super(`no tool with _id ${toolId}`);
  }
}

/** A transition lost the race against concurrent writes too many times in a row. */
export class SyncConflictError extends Error {
  override name = 'SyncConflictError';
}

/** A tool's stored sync metadata holds a value no transition can use: nothing was written. */
export class SyncStateError extends Error {
  override name = 'SyncStateError';
  constructor(readonly toolId: string, readonly reason: string) {
    super(`tool ${toolId}: its stored sync metadata cannot be used (${reason}); repair it, then run \`tool-sync backfill\``);
  }
}

export function describeValue(value: unknown): string {
  // JSON would show NaN and Infinity as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  try {
    // undefined for undefined, functions and symbols, whatever the declared type says.
    const json = JSON.stringify(value) as string | undefined;
    return json ?? typeof value;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
