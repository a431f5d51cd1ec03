import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { pointIdOf } from '../../src/models/point-id.js';
import { POINT_ID_NAMESPACE, pointIdFromHex } from '../../src/sync/point-id.js';

describe('point ids: a UUID derived from the _id, which never changes', () => {
  it('is the RFC 9562 version 5 UUID of the hex _id in the package namespace (what uuid.uuid5 gives in Python)', () => {
    // python3 -c "import uuid; print(uuid.uuid5(uuid.UUID('a8bd0af3-541b-4c77-b243-3d5c70a10e66'), '0123456789abcdef01234567'))"
    expect(POINT_ID_NAMESPACE).toBe('a8bd0af3-541b-4c77-b243-3d5c70a10e66');
    expect(pointIdFromHex('0123456789abcdef01234567')).toBe('4ab31d84-832c-5f42-b0c0-2aa051c647e5');
    expect(pointIdFromHex('0123456789ABCDEF01234567')).toBe('4ab31d84-832c-5f42-b0c0-2aa051c647e5');
  });

  it('takes a tool, its ObjectId or the hex; the business id plays no part', () => {
    const _id = new Types.ObjectId();
    const expected = pointIdFromHex(_id.toHexString());
    expect(pointIdOf(_id)).toBe(expected);
    expect(pointIdOf(_id.toHexString())).toBe(expected);
    expect(pointIdOf({ _id, id: 'vscode' })).toBe(expected);
    expect(pointIdOf({ _id, id: 'renamed' })).toBe(expected);
    expect(pointIdOf(new Types.ObjectId())).not.toBe(expected);
  });

  it('refuses what is not an ObjectId _id, naming it', () => {
    expect(() => pointIdOf('vscode')).toThrow(/toolOrId: expected .*got "vscode"/);
    expect(() => pointIdOf({ _id: 42 })).toThrow(/tool\._id: expected .*got 42/);
    expect(() => pointIdOf(null)).toThrow(/toolOrId/);
  });
});
