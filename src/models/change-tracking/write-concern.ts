import { SyncArgumentError } from '../errors.js';

/**
 * Unacknowledged writes (`w: 0`) are refused where the package must read after the write: the
 * settle of a content change, the retirement of a delete's tombstones. The server does not say
 * when such a write lands, and the driver sends the read on any pooled connection (no session may
 * carry an unacknowledged write), so the read could run first and settle the tool as it was.
 */

/** Options of a write as given: a write concern as an object (or a driver WriteConcern) or as `w`. */
interface WriteOptions { writeConcern?: unknown; w?: unknown }

/** A Mongoose collection, whose driver collection knows the write concern it inherits. */
interface WithDriverCollection { collection?: { writeConcern?: { w?: unknown } } | null }

/** Where a write's `w` comes from (the name a caller gave it by) and its value. */
export function writeConcernW(options: unknown, collection: unknown): { option: string; w: unknown } {
  const given: WriteOptions = typeof options === 'object' && options !== null ? options : {};
  const concern = given.writeConcern;
  if (typeof concern === 'object' && concern !== null && 'w' in concern) return { option: 'writeConcern.w', w: (concern as { w?: unknown }).w };
  if (given.w !== undefined) return { option: 'w', w: given.w };
  const inherited = (collection as WithDriverCollection | null | undefined)?.collection?.writeConcern?.w;
  return { option: "writeConcern.w (the collection's default)", w: inherited };
}

export const isUnacknowledged = (options: unknown, collection: unknown): boolean => writeConcernW(options, collection).w === 0;

/** Refuses an unacknowledged write that the package must read after (see above); `what` says which. */
export function refuseUnacknowledged(options: unknown, collection: unknown, what: string): void {
  const { option, w } = writeConcernW(options, collection);
  if (w !== 0) return;
  throw new SyncArgumentError(
    option,
    w,
    `an acknowledged write concern (w: 1, "majority", …) for ${what}: tool-sync reads the tools after such a write ` +
      'to keep their sync state true, and cannot know when an unacknowledged write lands',
  );
}
