import { Types } from 'mongoose';
import { pointIdFromHex } from '../sync/point-id.js';
import { toolObjectId } from './sync-arguments.js';

/**
 * The key of a tool's point in every vector collection: a UUID derived from the tool's `_id`
 * (see src/sync/point-id.ts). Takes the tool (a document or any object with its `_id`), its
 * `_id`, or the `_id`'s 24 hex characters; anything else is a SyncArgumentError naming it.
 */
export function pointIdOf(toolOrId: unknown): string {
  const isTool = typeof toolOrId === 'object' && toolOrId !== null && !(toolOrId instanceof Types.ObjectId);
  const id = isTool ? (toolOrId as { _id?: unknown })._id : toolOrId;
  return pointIdFromHex(toolObjectId(id, isTool ? 'tool._id' : 'toolOrId').toHexString());
}
