import { createHash } from 'node:crypto';

/**
 * A tool's points are keyed by what never changes: its document `_id`. The business `id` can be
 * edited, and a tool deleted and re-created under the same `id` is another document with another
 * `_id`, so keys made from `id` drift and collide; keys made from `_id` do neither.
 *
 * The key is a name-based UUID (RFC 9562 version 5) of the `_id`'s 24 lowercase hex characters
 * in this namespace: Qdrant takes UUIDs as point ids, and a worker in another language derives
 * the same key (Python: `uuid.uuid5(UUID('a8bd0af3-…'), hex)`).
 */
export const POINT_ID_NAMESPACE = 'a8bd0af3-541b-4c77-b243-3d5c70a10e66';

const namespaceBytes = Buffer.from(POINT_ID_NAMESPACE.replace(/-/g, ''), 'hex');

/** The point id of the tool whose `_id` has these 24 hex characters (lowercased first). */
export function pointIdFromHex(hex: string): string {
  const digest = createHash('sha1').update(namespaceBytes).update(hex.toLowerCase(), 'utf8').digest();
  const bytes = digest.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const text = bytes.toString('hex');
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
}
