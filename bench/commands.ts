/**
 * What one side of a comparison sent and spent, from the driver's command monitoring
 * (`monitorCommands: true`): every command the driver starts while a write runs is counted by
 * name, with the server round trip the driver reports for it; the write's own wall time and
 * this process's CPU are added by `record`.
 */
import type mongoose from 'mongoose';

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
