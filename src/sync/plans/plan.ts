/**
 * A plan is what a transition decides from a tool's stored state, its arguments and the time:
 * a conditional write (the filter matches only while the tool is still as read) and what to
 * report once it lands. Plans are pure; `src/models/conditional-write.ts` carries them out.
 */
export interface PlannedWrite {
  filter: Record<string, unknown>;
  update: Record<string, unknown>;
}

export type Decision<T> =
  /** Write (or not, when `write` is null) and report `result`. */
  | { kind: 'done'; write: PlannedWrite | null; result: T }
  /** Write this first (settling the tool), then decide again on what is stored then. */
  | { kind: 'again'; write: PlannedWrite }
  /** The stored state cannot be used: nothing is written, the caller is told why. */
  | { kind: 'invalid'; reason: string };
