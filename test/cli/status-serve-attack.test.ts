import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { startStatusServer, type StatusServer } from '../../src/cli/serve/server.js';
import { ToolModel, type SyncStats } from '../../src/index.js';
import { hasStackTrace, startCli, uriWithDatabase } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';
import { toolInput } from '../helpers/tools.js';

/*
 * The status server against requests no browser sends and clients an operator does not expect:
 * started in-process on the test's database, so that an uncaught exception fails the file.
 */

const database = useTestDatabase(import.meta.url);

/** One raw HTTP/1.1 exchange (the server closes it): what a client that is no browser can send. */
function raw(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
    socket.on('close', () => { resolve(text); });
    socket.on('error', reject);
    socket.write(request);
  });
}

type Read = (options?: { now?: Date; full?: boolean }) => Promise<SyncStats>;

/** Puts `replacement` in the place of ToolModel.getSyncStats (it reads for real through `real`); the function returned puts the model's own back. */
function replaceReads(replacement: (real: Read) => Read): () => void {
  const own: unknown = Reflect.get(ToolModel, 'getSyncStats');
  const real: Read = (options) => (own as Read).call(ToolModel, options);
  Reflect.set(ToolModel, 'getSyncStats', replacement(real));
  return () => { Reflect.set(ToolModel, 'getSyncStats', own); };
}

let server: StatusServer;
beforeAll(async () => {
  await ToolModel.createIndexes();
  await ToolModel.create(toolInput());
  server = await startStatusServer({ model: ToolModel, host: '127.0.0.1', port: 0, collectEveryMs: 60_000, target: 'test', warn: () => undefined });
});
afterAll(async () => { await server.close(); });

describe('status --serve under hostile requests', () => {
  it('answers a request target no URL parser takes (GET http://x:99999/) with 400, and goes on serving', async () => {
    const answer = await raw(server.url, 'GET http://x:99999/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('bad request: the URL cannot be parsed');
    expect((await fetch(`${server.url}healthz`)).status).toBe(200);
  });

  it('refuses other methods with 405 and Allow, and a huge URL without reading the database', async () => {
    for (const method of ['POST', 'OPTIONS', 'DELETE']) {
      const response = await fetch(`${server.url}api/stats`, { method });
      expect(response.status, method).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
    }
    const head = await fetch(`${server.url}api/stats`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await fetch(`${server.url}${'a'.repeat(20_000)}`)).status).toBe(431);
  });

  it('echoes a 404 path as text a browser never sniffs as HTML; /live carries the page\'s policy; nothing may frame the page', async () => {
    const missing = await fetch(`${server.url}%3Cscript%3Ealert(1)%3C/script%3E`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(missing.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await missing.text()).not.toContain('<script>');
    const page = await fetch(server.url);
    const live = await fetch(`${server.url}live`);
    expect(live.headers.get('content-security-policy')).toBe(page.headers.get('content-security-policy'));
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(live.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('serves concurrent /api/stats requests from one read of the database (no amplification by an unauthenticated client)', async () => {
    const requests = 20;
    // Counted as the server receives them (Node's diagnostics channel): the read is held until every request has arrived.
    let arrived = 0;
    let allArrived: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { allArrived = resolve; });
    const onRequest = (): void => {
      arrived += 1;
      if (arrived === requests) allArrived();
    };
    subscribe('http.server.request.start', onRequest);
    onTestFinished(() => { unsubscribe('http.server.request.start', onRequest); });
    // The model's own getSyncStats, held at the gate.
    let reads = 0;
    const restore = replaceReads((real) => async (options) => {
      reads += 1;
      await gate;
      return real(options);
    });
    let answers: SyncStats[];
    try {
      answers = await Promise.all(Array.from({ length: requests }, async () => {
        const response = await fetch(`${server.url}api/stats`);
        expect(response.status).toBe(200);
        return (await response.json()) as SyncStats;
      }));
    } finally {
      restore();
    }
    expect(reads).toBe(1);
    expect(new Set(answers.map((answer) => answer.total))).toEqual(new Set([1]));
  });

  // A web page the operator visits could point its own name at 127.0.0.1 and read the page,
  // /api/stats and /metrics through the browser (DNS rebinding): bound to loopback, only loopback names are answered.
  it('bound to loopback, refuses a request whose Host is another name (DNS rebinding), answers loopback names', async () => {
    for (const host of ['attacker.example', 'attacker.example:9464', '127.0.0.1.attacker.example', '']) {
      const answer = await raw(server.url, `GET /api/stats HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(answer, host).toMatch(/^HTTP\/1\.1 421 /);
    }
    const port = new URL(server.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`, '127.0.0.2']) {
      const answer = await raw(server.url, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(answer, host).toMatch(/^HTTP\/1\.1 200 /);
    }
  });
});

describe('the database failing while the page is served', () => {
  it('the page says since when and why above the last numbers it has, said once on stderr; and drops it once a read works again', async () => {
    const warned: string[] = [];
    const other = await startStatusServer({ model: ToolModel, host: '127.0.0.1', port: 0, collectEveryMs: 30, target: 'test', warn: (line) => { warned.push(line); } });
    const live = async (): Promise<string> => (await fetch(`${other.url}live`)).text();
    const until = async (what: (html: string) => boolean): Promise<string> => {
      for (let tries = 0; tries < 200; tries += 1) {
        const html = await live();
        if (what(html)) return html;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error('the page never changed as expected');
    };
    try {
      const restore = replaceReads(() => () => Promise.reject(new Error('connection <refused>')));
      let failing: string;
      try {
        failing = await until((html) => html.includes('data-field="problem"'));
        const stats = await fetch(`${other.url}api/stats`);
        expect(stats.status).toBe(503);
        expect(await stats.text()).toBe('cannot read the status: connection <refused>\n');
      } finally {
        restore();
      }
      expect(failing).toMatch(/the database cannot be read since \d{4}-\d\d-\d\d [\d:]+ UTC: connection &lt;refused&gt;; the numbers below are the last it gave/);
      expect(failing).toContain('data-field="total" data-value="1"');
      await until((html) => !html.includes('data-field="problem"'));
      expect(warned.filter((line) => line.startsWith('cannot sample the status'))).toHaveLength(1);
      expect(warned).toContain('status sampling works again');
    } finally {
      await other.close();
    }
  });
});

describe('closing the status server while it reads', () => {
  it('ends while an /api/stats read is in flight; the read failing afterwards (the database closed) rejects nothing unhandled', async () => {
    let closeDatabase: () => void = () => undefined;
    const databaseClosed = new Promise<void>((resolve) => { closeDatabase = resolve; });
    const arrived: string[] = [];
    let allArrived: () => void = () => undefined;
    const bothArrived = new Promise<void>((resolve) => { allArrived = resolve; });
    const other = await startStatusServer({ model: ToolModel, host: '127.0.0.1', port: 0, collectEveryMs: 60_000, target: 'test', warn: () => undefined });
    // From now on a read waits until the test "closes the database", then fails as a read on a closed connection does.
    const restore = replaceReads(() => async () => {
      await databaseClosed;
      throw new Error('client was closed');
    });
    const onRequest = ({ request }: { request: { url?: string } }): void => {
      arrived.push(request.url ?? '');
      if (arrived.includes('/api/stats')) allArrived();
    };
    subscribe('http.server.request.start', onRequest as (message: unknown) => void);
    try {
      const stats = fetch(`${other.url}api/stats`).then((response) => response.status, () => 'closed');
      await bothArrived;
      await other.close();
      closeDatabase();
      // The connection was closed with the server: the client sees that.
      expect(await stats).toBe('closed');
      // Whatever the reads' failures do after close, vitest reports an unhandled rejection as an error of this file.
      await new Promise<void>((resolve) => { setImmediate(resolve); });
    } finally {
      closeDatabase();
      unsubscribe('http.server.request.start', onRequest as (message: unknown) => void);
      restore();
    }
  });
});

describe('status --watch whose reader goes away', () => {
  it('ends (exit 0) when its stdout is closed, as by `| head -1`, instead of reading the database for ever', { timeout: 15_000 }, async () => {
    const { child, done } = startCli(['status', '--watch', '--collect-every-ms', '100', '--uri', uriWithDatabase(inject('mongoUri'), database.name)]);
    // Broken, the watch would outlive the test.
    onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill(); });
    // The reader takes the first frame and goes (the pipe closes: the next write fails with EPIPE).
    child.stdout.once('data', () => { child.stdout.destroy(); });
    const result = await done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^tool-sync: stopped$/m);
    expect(hasStackTrace(result.stderr)).toBe(false);
  });
});
