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

function describeValue(value: unknown): string {
  try {
    // undefined for undefined, functions and symbols, whatever the declared type says.
    const json = JSON.stringify(value) as string | undefined;
    return json ?? typeof value;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
