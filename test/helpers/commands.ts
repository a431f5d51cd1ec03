import mongoose from 'mongoose';

type CommandEventName = 'commandStarted' | 'commandSucceeded';
interface CommandEvents { commandStarted: mongoose.mongo.CommandStartedEvent; commandSucceeded: mongoose.mongo.CommandSucceededEvent }

/** The command events of one kind the default connection's client emits while `run` runs (command monitoring on). */
export async function eventsDuring<K extends CommandEventName>(kind: K, run: () => Promise<unknown>): Promise<CommandEvents[K][]> {
  const client = mongoose.connection.getClient();
  const events: CommandEvents[K][] = [];
  const record = (event: CommandEvents[K]): void => { events.push(event); };
  client.on(kind, record);
  try {
    await run();
  } finally {
    client.off(kind, record);
  }
  return events;
}

/** The commands started while `run` runs. */
export const commandsDuring = (run: () => Promise<unknown>): Promise<mongoose.mongo.CommandStartedEvent[]> => eventsDuring('commandStarted', run);

/** The names of the commands started while `run` runs, in order. */
export async function commandNamesDuring(run: () => Promise<unknown>): Promise<string[]> {
  return (await commandsDuring(run)).map((event) => event.commandName);
}

/** What a call came to: its value, or what it threw. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export async function outcomeOf(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error };
  }
}

interface CursorReply { cursor?: { firstBatch?: unknown[]; nextBatch?: unknown[] } }

/** Documents the server sent in cursor replies while `run` ran: what a query read into the client. */
export async function documentsRead(run: () => Promise<unknown>): Promise<number> {
  const replies = await eventsDuring('commandSucceeded', run);
  return replies
    .filter((event) => event.commandName === 'find' || event.commandName === 'getMore')
    .reduce((sum, event) => {
      const { cursor } = event.reply as CursorReply;
      return sum + (cursor?.firstBatch ?? cursor?.nextBatch ?? []).length;
    }, 0);
}
