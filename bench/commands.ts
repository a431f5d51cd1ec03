/**
 * What one side of a comparison sent and spent, from the driver's command monitoring
 * (`monitorCommands: true`): every command the driver starts while a write runs is counted by
 * name, with the server round trip the driver reports for it; the write's own wall time and
 * this process's CPU are added by `record`. And what a query's cursors read, and what the
 * server examined for it.
 */
import mongoose from 'mongoose';

export interface Tally {
  writes: number;
  ms: number;
  cpuMs: number;
  commands: Record<string, number>;
  commandMs: Record<string, number>;
}

export const emptyTally = (): Tally => ({ writes: 0, ms: 0, cpuMs: 0, commands: {}, commandMs: {} });

type Client = ReturnType<mongoose.Connection['getClient']>;

interface StartedEvent { commandName: string; requestId: number }
interface EndedEvent { commandName: string; requestId: number; duration: number }

export class CommandRecorder {
  private active: Tally | undefined;
  /** Commands started while a tally was active: their end is added to that tally even if it arrives late. */
  private readonly owner = new Map<number, Tally>();

  private readonly onStarted = (event: StartedEvent): void => {
    if (this.active === undefined) return;
    this.active.commands[event.commandName] = (this.active.commands[event.commandName] ?? 0) + 1;
    this.owner.set(event.requestId, this.active);
  };

  private readonly onEnded = (event: EndedEvent): void => {
    const tally = this.owner.get(event.requestId);
    if (tally === undefined) return;
    this.owner.delete(event.requestId);
    tally.commandMs[event.commandName] = (tally.commandMs[event.commandName] ?? 0) + event.duration;
  };

  constructor(private readonly client: Client) {
    client.on('commandStarted', this.onStarted);
    client.on('commandSucceeded', this.onEnded);
    client.on('commandFailed', this.onEnded);
  }

  /** Runs one write, counting into `tally` what it sent, how long it took and the CPU it used here. */
  async record(tally: Tally, write: () => Promise<unknown>): Promise<void> {
    if (this.active !== undefined) throw new Error('the bench measures one write at a time');
    this.active = tally;
    const cpu = process.cpuUsage();
    const started = performance.now();
    try {
      await write();
    } finally {
      tally.ms += performance.now() - started;
      const used = process.cpuUsage(cpu);
      tally.cpuMs += (used.user + used.system) / 1000;
      tally.writes += 1;
      this.active = undefined;
    }
  }

  detach(): void {
    this.client.off('commandStarted', this.onStarted);
    this.client.off('commandSucceeded', this.onEnded);
    this.client.off('commandFailed', this.onEnded);
  }
}

/** One `find` a call sent, and what its cursor gave back. */
export interface FindRead {
  /** The command as the driver sent it, and the database it went to. */
  command: mongoose.mongo.Document;
  databaseName: string;
  /** Documents in its first batch and in every getMore on its cursor. */
  returned: number;
  /** The server ran it to its end (the cursor closed by the server, not killed by the caller). */
  exhausted: boolean;
}

interface CursorReply { cursor?: { id?: unknown; firstBatch?: unknown[]; nextBatch?: unknown[] } }

/** A cursor id as a map key ('0': the server closed the cursor). */
function cursorKey(id: unknown): string {
  if (mongoose.mongo.Long.isLong(id)) return id.toString();
  return typeof id === 'number' || typeof id === 'bigint' ? String(id) : '0';
}
interface StartedWithCommand extends StartedEvent { command: mongoose.mongo.Document; databaseName: string }
interface SucceededWithReply { requestId: number; reply: unknown }

/**
 * The finds one call sends and the documents their cursors bring back (first batch and
 * getMores): what a query reads into the client. Attached once; `begin` and `end` bracket a
 * call so that the timed call itself runs with no bookkeeping of ours around it.
 */
export class CursorRecorder {
  private reads: FindRead[] | undefined;
  private readonly pending = new Map<number, FindRead>();
  private readonly byCursor = new Map<string, FindRead>();

  private readonly onStarted = (event: StartedWithCommand): void => {
    if (this.reads === undefined) return;
    if (event.commandName === 'find') {
      const read: FindRead = { command: event.command, databaseName: event.databaseName, returned: 0, exhausted: false };
      this.reads.push(read);
      this.pending.set(event.requestId, read);
    } else if (event.commandName === 'getMore') {
      const read = this.byCursor.get(cursorKey(event.command.getMore));
      if (read !== undefined) this.pending.set(event.requestId, read);
    }
  };

  private readonly onSucceeded = (event: SucceededWithReply): void => {
    const read = this.pending.get(event.requestId);
    if (read === undefined) return;
    this.pending.delete(event.requestId);
    const { cursor } = event.reply as CursorReply;
    read.returned += (cursor?.firstBatch ?? cursor?.nextBatch ?? []).length;
    const id = cursorKey(cursor?.id);
    if (id === '0') read.exhausted = true;
    else this.byCursor.set(id, read);
  };

  constructor(private readonly client: Client) {
    client.on('commandStarted', this.onStarted);
    client.on('commandSucceeded', this.onSucceeded);
  }

  begin(): void {
    this.reads = [];
    this.pending.clear();
    this.byCursor.clear();
  }

  /** The finds sent since `begin`. */
  end(): FindRead[] {
    const reads = this.reads ?? [];
    this.reads = undefined;
    return reads;
  }

  detach(): void {
    this.client.off('commandStarted', this.onStarted);
    this.client.off('commandSucceeded', this.onSucceeded);
  }
}

export const documentsIn = (reads: FindRead[]): number => reads.reduce((sum, read) => sum + read.returned, 0);

/** What the server examined for a call's finds, by its own count. */
export interface Examined {
  finds: number;
  totalDocsExamined: number;
  totalKeysExamined: number;
}

interface ExplainReply { executionStats?: { totalDocsExamined?: unknown; totalKeysExamined?: unknown } }

/** The parts of a sent find that decide what the server examines (not the session, not the batch size). */
const QUERY_FIELDS = ['find', 'filter', 'sort', 'projection', 'hint', 'skip', 'collation'] as const;

/**
 * Replays each find of `reads` as `explain` with `executionStats` and adds up the documents and
 * index keys the server examined. A cursor the caller closed early is replayed with a limit of
 * what it returned (what the server had produced for it); one the server ran to its end, as sent.
 * Null where the engine's explain gives no executionStats (FerretDB v1) or refuses the command.
 */
export async function examinedBy(client: Client, reads: FindRead[]): Promise<Examined | null> {
  const examined: Examined = { finds: 0, totalDocsExamined: 0, totalKeysExamined: 0 };
  for (const { command, databaseName, returned, exhausted } of reads) {
    const find: mongoose.mongo.Document = {};
    for (const field of QUERY_FIELDS) {
      const value: unknown = command[field];
      if (value !== undefined) find[field] = value;
    }
    const sent: unknown = command.limit;
    const limit = exhausted || returned === 0 ? sent : returned;
    if (limit !== undefined) find.limit = limit;
    let reply: ExplainReply;
    try {
      reply = await client.db(databaseName).command({ explain: find, verbosity: 'executionStats' });
    } catch {
      return null;
    }
    const docs = reply.executionStats?.totalDocsExamined;
    const keys = reply.executionStats?.totalKeysExamined;
    if (typeof docs !== 'number') return null;
    examined.finds += 1;
    examined.totalDocsExamined += docs;
    examined.totalKeysExamined += typeof keys === 'number' ? keys : 0;
  }
  return examined;
}
