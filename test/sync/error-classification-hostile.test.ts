import { describe, expect, it } from 'vitest';
import { classifySyncError, errorMessage, SYNC_STAGES } from '../../src/sync/error-classification.js';
import { SYNC_ERROR_CODES } from '../../src/sync/vocabulary.js';

const boom = (): never => { throw new Error('hostile'); };

/** A Proxy every one of whose traps throws. */
function trapsThrow<T extends object>(target: T, thrown: () => unknown = () => new Error('trap')): T {
  const fail = (): never => { throw thrown(); };
  return new Proxy(target, {
    get: fail, set: fail, has: fail, ownKeys: fail, getPrototypeOf: fail, setPrototypeOf: fail, getOwnPropertyDescriptor: fail,
    defineProperty: fail, deleteProperty: fail, isExtensible: fail, preventExtensions: fail, apply: fail, construct: fail,
  });
}

function revoked<T extends object>(target: T): T {
  const { proxy, revoke } = Proxy.revocable(target, {});
  revoke();
  return proxy;
}

function withGetter<T extends object>(target: T, key: string, get: () => unknown): T {
  return Object.defineProperty(target, key, { get, configurable: true });
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

function fail(): void { /* thrown as a value, never called */ }

const cyclic: Record<string, unknown> = { status: 'odd' };
cyclic.self = cyclic;

/** [label, value thrown, the exact message, or a pattern it must match]. */
const HOSTILE: [string, unknown, string | RegExp][] = [
  ['an Error whose message getter throws', withGetter(new Error('x'), 'message', boom), 'Error (its message cannot be read)'],
  ['an Error whose name getter throws', withGetter(new Error('socket hang up'), 'name', boom), 'Error: socket hang up'],
  ['an Error whose code getter throws', withGetter(new Error('bad gateway'), 'code', boom), 'Error: bad gateway'],
  ['an Error whose cause getter throws', withGetter(new Error('request timed out'), 'cause', boom), 'Error: request timed out'],
  ['an Error whose message is a hostile object', withGetter(new Error(), 'message', () => trapsThrow({})), 'Error (its message cannot be read)'],
  ['an Error whose cause is a revoked proxy', new Error('outer', { cause: revoked({}) }), 'Error: outer'],
  ['a Proxy of an Error whose traps throw', trapsThrow(new Error('hidden')), '[object (proxy whose traps throw)]'],
  ['a Proxy whose traps throw a revoked proxy', trapsThrow({}, () => revoked({})), '[object (proxy whose traps throw)]'],
  ['a revoked Proxy', revoked(new Error('gone')), '[object (revoked proxy)]'],
  ['a revoked Proxy of a function', revoked(fail), '[function (revoked proxy)]'],
  ['a Proxy of a function whose traps throw', trapsThrow(fail), '[function (proxy whose traps throw)]'],
  ['a Symbol', Symbol('boom'), 'Symbol(boom)'],
  ['a Symbol without a description', Symbol(), 'Symbol()'],
  ['a function', fail, 'function fail'],
  ['an anonymous function', (() => () => undefined)(), 'function (anonymous)'],
  ['a function whose name getter throws', withGetter(function named() { /* thrown */ }, 'name', boom), 'function (anonymous)'],
  ['a BigInt', 10n, '10n was thrown'],
  ['an object whose toJSON throws, with a message', { message: 'embedder said no', toJSON: boom }, 'embedder said no'],
  ['an object whose toJSON throws', { toJSON: boom }, '[object Object]'],
  ['an object whose toJSON and toStringTag throw', withGetter({ toJSON: boom }, Symbol.toStringTag as unknown as string, boom), '[object (unreadable)]'],
  ['a cycle', cyclic, '[object Object]'],
  ['null', null, 'null was thrown'],
  ['undefined', undefined, 'undefined was thrown'],
  ['a number', 42, '42 was thrown'],
  ['NaN', Number.NaN, 'NaN was thrown'],
  ['false', false, 'false was thrown'],
  ['an empty string', '', 'an empty string was thrown'],
  ['an Error with no name and no message', Object.assign(new Error(''), { name: '' }), 'Error'],
  ['a multi-line message', new Error('first line\n    second line\r\n'), 'Error: first line second line'],
  ['an object whose constructor getter throws', withGetter({ status: 503 }, 'constructor', boom), '{"status":503}'],
];

describe('classifySyncError and errorMessage, for anything thrown', () => {
  it.each(HOSTILE)('%s: a code at every stage, and a useful one-line message', (_label, thrown, expected) => {
    for (const stage of SYNC_STAGES) {
      const code = classifySyncError(thrown, stage);
      expect(SYNC_ERROR_CODES).toContain(code);
      if (stage === 'validation') expect(code).toBe('VALIDATION_ERROR');
    }
    const message = errorMessage(thrown);
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
    expect(message).not.toMatch(/[\r\n]/);
    expect(message.trim()).not.toBe('');
  });

  it('still classifies by what can be read around a getter that throws', () => {
    expect(classifySyncError(withGetter(new TimeoutError('late'), 'message', boom), 'qdrant')).toBe('QDRANT_TIMEOUT');
    expect(classifySyncError(withGetter(Object.assign(new Error('upstream'), { status: 503 }), 'code', boom), 'qdrant')).toBe('QDRANT_UNAVAILABLE');
    expect(classifySyncError(withGetter(new Error('request timed out'), 'cause', boom), 'embedding')).toBe('EMBEDDING_TIMEOUT');
    expect(classifySyncError(withGetter(Object.assign(new Error('slow down'), { status: 429 }), 'name', boom), 'embedding')).toBe('EMBEDDING_RATE_LIMIT');
    // The cause is followed past a hostile link: its own facts are unreadable, the outer ones count.
    expect(classifySyncError(Object.assign(new Error('outer'), { code: 'ECONNREFUSED', cause: revoked({}) }), 'qdrant')).toBe('QDRANT_UNAVAILABLE');
  });

  it('a hostile value is UNKNOWN outside the validation stage', () => {
    for (const thrown of [trapsThrow(new TimeoutError('hidden')), revoked(new TimeoutError('gone')), Symbol('timeout'), fail, 10n]) {
      expect(classifySyncError(thrown, 'embedding')).toBe('UNKNOWN');
      expect(classifySyncError(thrown, 'qdrant')).toBe('UNKNOWN');
    }
  });
});
