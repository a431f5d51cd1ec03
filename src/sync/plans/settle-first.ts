import { type StoredTool } from '../stored-tool.js';
import { type Decision } from './plan.js';
import { planSettle } from './settle.js';

/**
 * Transitions act on settled tools only: a tool with a pending hash check, missing metadata or
 * stale hashes is settled first (and the transition decided again on the result), so no
 * transition is ever based on an unverified hash. Returns undefined when the tool is settled.
 */
export function settleFirst(tool: StoredTool, now: Date): Extract<Decision<never>, { kind: 'again' | 'invalid' }> | undefined {
  const settle = planSettle(tool, now);
  if (settle.kind === 'settled') return undefined;
  if (settle.kind === 'invalid') return { kind: 'invalid', reason: settle.reason };
  return { kind: 'again', write: settle.write };
}
