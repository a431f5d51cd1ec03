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

export function isHttpUrl(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (typeof value !== 'string') return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

export function trimmedStrings(value: unknown): unknown {
  return Array.isArray(value) ? value.map((item: unknown) => (typeof item === 'string' ? item.trim() : item)) : value;
}

export function lowercaseTokens(value: unknown): unknown {
  const trimmed = trimmedStrings(value);
  return Array.isArray(trimmed)
    ? trimmed.map((item: unknown) => (typeof item === 'string' ? item.toLowerCase() : item))
    : trimmed;
}

/** A validator of every item of a string array; the message names the path, the rule and the value. */
export function eachItem(check: (item: string) => boolean, rule: string) {
  return {
    validator: (items: unknown): boolean =>
      !Array.isArray(items) || items.every((item: unknown) => typeof item === 'string' && check(item)),
    message: (props: { path: string; value: unknown }) =>
      `Path \`${props.path}\` items must be ${rule}, got ${JSON.stringify(props.value)}.`,
  };
}
