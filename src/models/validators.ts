import { LAST_ERROR_MAX_LENGTH } from '../sync/vocabulary.js';

/** `required` whose failure names the value too (null, undefined or ''), not just the path. */
export const required = [true, 'Path `{PATH}` is required, got {VALUE}.'] as [true, string];

/** Mongoose validator for counters: a whole number. The message names the path and the value. */
export const integerValidator = {
  validator: (value: unknown): boolean => value === null || value === undefined || Number.isInteger(value),
  message: 'Path `{PATH}` must be an integer, got {VALUE}.',
};

/**
 * A failure message longer than the limit is cut (with a trailing ellipsis) instead of
 * rejected: refusing it would make recording the failure itself fail, and lose it.
 * Error objects contribute their message.
 */
export function truncateLastError(value: unknown): unknown {
  const text = value instanceof Error ? value.message : value;
  if (typeof text !== 'string' || text.length <= LAST_ERROR_MAX_LENGTH) return text;
  let end = LAST_ERROR_MAX_LENGTH - 1;
  // Never split a surrogate pair: a lone half is not valid text.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}
