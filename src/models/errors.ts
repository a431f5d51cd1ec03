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
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
