import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type ToolModelType } from '../../models/create-tool-model.js';
import { type SyncStats } from '../../models/tool-queries.js';
import { describeFailure } from '../errors.js';
import { readStatus, statusJson } from '../status-report.js';
import { HISTORY_WINDOW_MS, SyncHistory } from './history.js';
import { LIVE_PATH, pageScript, renderLive, renderPage, type PageView } from './page.js';

/** The OpenTelemetry Prometheus exporter's registered port (github.com/prometheus/prometheus/wiki/Default-port-allocations). */
export const DEFAULT_STATUS_PORT = 9464;
export const DEFAULT_STATUS_HOST = '127.0.0.1';
export const DEFAULT_COLLECT_EVERY_MS = 5000;
/** The page asks for new numbers at most this often, however short the sampling interval. */
const MIN_PAGE_REFRESH_MS = 500;

export interface StatusServerOptions {
  model: ToolModelType;
  host: string;
  /** 0: a free port, chosen by the system (the URL says which). */
  port: number;
  /** How often the page's numbers, the sparkline and the /metrics gauges are sampled. */
  collectEveryMs: number;
  /** Which server, database and collection: shown on the page. */
  target: string;
  /** A line for the operator (a failed sample). */
  warn: (line: string) => void;
}

export interface StatusServer {
  /** Where the page is, e.g. http://127.0.0.1:9464/ */
  url: string;
  /** The latest sample, what the page shows (no read of its own); rejects with the latest failure while the database cannot be read. */
  latest: () => Promise<SyncStats>;
  /** Stops listening, sampling and the metrics, and waits for them. */
  close(): Promise<void>;
}

/** Whether `host` reaches only this machine: anything else exposes a page without authentication. */
export function isLoopback(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** The name in a Host header, without its port (`[::1]:9464` → `[::1]`); undefined when there is none. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  const bracketed = /^(\[[^\]]*\])(?::\d*)?$/.exec(header);
  return bracketed?.[1] ?? header.replace(/:\d*$/, '');
}

/**
 * `/metrics`: the OpenTelemetry SDK with the Prometheus exporter as its reader, and the package's
 * instruments on it; loaded only here, only for --serve. Its samples are the page's too: one read
 * of the dashboard per interval serves both.
 */
async function startMetrics(model: ToolModelType, collectEveryMs: number) {
  const [{ MeterProvider }, { PrometheusExporter }, { instrumentSync }] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-prometheus'),
    import('../../observability/instrument-sync.js'),
  ]);
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  const instrumentation = await instrumentSync({ model, meter: provider.getMeter('tool-sync'), collectEveryMs });
  return {
    collect: instrumentation.collect,
    handle: (req: IncomingMessage, res: ServerResponse): void => { exporter.getMetricsRequestHandler(req, res); },
    stop: async (): Promise<void> => {
      instrumentation.shutdown();
      await provider.shutdown();
    },
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  // nosniff: a browser never takes the text of a 404 (which echoes the path) or of an error for HTML.
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException): void => {
      if (error.code === 'EADDRINUSE') reject(new Error(`port ${port} on ${host} is in use (another tool-sync status --serve, or a Prometheus exporter?): pass --port <n>`));
      else if (error.code === 'EACCES') reject(new Error(`no permission to listen on port ${port} on ${host}: pass --port <n> above 1023`));
      else reject(new Error(`cannot listen on ${host}:${port}: ${error.message}`));
    };
    server.once('error', failed);
    server.listen({ host, port }, () => {
      server.off('error', failed);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/**
 * `tool-sync status --serve`: the status page, its live part and history, `/api/stats` (the JSON of
 * `status --json`), `/healthz` and `/metrics`, on `host:port`. The page's numbers come from a sample
 * taken every `collectEveryMs` (however many people look at it); `/api/stats` reads them afresh.
 */
export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const { model, collectEveryMs } = options;
  const history = new SyncHistory();
  const metrics = await startMetrics(model, collectEveryMs);
  let latest: { stats: SyncStats; at: number };
  try {
    // The first sample before anything listens: a database that cannot answer is an error at once, not a broken page.
    latest = { stats: await metrics.collect(), at: Date.now() };
  } catch (error) {
    await metrics.stop();
    throw error;
  }
  history.add(latest.stats, latest.at);

  let sampling: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  // The latest samples' failure: the page says so above the last numbers it has.
  let problem: PageView['problem'];
  const sample = async (): Promise<void> => {
    try {
      latest = { stats: await metrics.collect(), at: Date.now() };
      history.add(latest.stats, latest.at);
      if (problem !== undefined) options.warn('status sampling works again');
      problem = undefined;
    } catch (error) {
      // Said once per run of failures; the page keeps the last numbers, with their time.
      const message = describeFailure(error);
      if (problem === undefined) options.warn(`cannot sample the status (the page keeps the last numbers): ${message}`);
      problem = { message, since: problem?.since ?? Date.now() };
    }
  };
  let stopped = false;
  // One sample at a time: the next is timed from the end of the last, so a slow database is never asked twice at once.
  const schedule = (): void => {
    sampling = setTimeout(() => { running = sample().finally(() => { if (!stopped) schedule(); }); }, collectEveryMs);
  };

  const refreshMs = Math.max(MIN_PAGE_REFRESH_MS, collectEveryMs);
  const view = (): PageView => ({
    stats: latest.stats, sampledAt: latest.at, history: history.list(), target: options.target, refreshMs, ...(problem === undefined ? {} : { problem }),
  });
  // The page loads nothing from elsewhere, and the browser is told so: its one script by hash, styles inline, requests to this origin only.
  const scriptHash = createHash('sha256').update(pageScript(refreshMs)).digest('base64');
  const policy = `default-src 'none'; script-src 'sha256-${scriptHash}'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; `
    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  // /api/stats reads afresh, but requests that come while a read runs share it: however many ask at once, one read at a time.
  let reading: Promise<SyncStats> | undefined;
  const readFresh = (): Promise<SyncStats> => {
    reading ??= readStatus(model).finally(() => { reading = undefined; });
    return reading;
  };

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    '/': (_req, res) => { send(res, 200, 'text/html; charset=utf-8', renderPage(view()), { 'content-security-policy': policy }); },
    // The live part is HTML too, and can be opened by itself: the same policy.
    [`/${LIVE_PATH}`]: (_req, res) => { send(res, 200, 'text/html; charset=utf-8', renderLive(view()), { 'content-security-policy': policy }); },
    '/api/stats': async (_req, res) => {
      let stats: SyncStats;
      try {
        stats = await readFresh();
      } catch (error) {
        // As /healthz says it: the database, not this server, is what failed.
        send(res, 503, 'text/plain; charset=utf-8', `cannot read the status: ${describeFailure(error)}\n`);
        return;
      }
      send(res, 200, 'application/json; charset=utf-8', `${statusJson(stats)}\n`);
    },
    '/api/history': (_req, res) => {
      send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify({ windowMs: HISTORY_WINDOW_MS, collectEveryMs, samples: history.list() })}\n`);
    },
    '/healthz': async (_req, res) => {
      try {
        const db = model.db.db;
        if (db === undefined) throw new Error('not connected');
        await db.admin().ping();
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      } catch (error) {
        send(res, 503, 'text/plain; charset=utf-8', `database unreachable: ${describeFailure(error)}\n`);
      }
    },
    '/metrics': metrics.handle,
  };

  const bindsLoopback = isLoopback(options.host);
  const server = createServer((req, res) => {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      // A request target no URL parser takes (`GET http://x:99999/`): thrown here, it would end the process.
      send(res, 400, 'text/plain; charset=utf-8', 'bad request: the URL cannot be parsed\n');
      return;
    }
    // Bound to loopback, only loopback names are answered: a page elsewhere that points its own
    // name at 127.0.0.1 (DNS rebinding) would otherwise read the dashboard through the browser.
    const named = hostName(req.headers.host);
    if (bindsLoopback && (named === undefined || !isLoopback(named))) {
      send(res, 421, 'text/plain; charset=utf-8', `Host ${JSON.stringify(req.headers.host ?? '')} refused: bound to loopback, this server answers only `
        + 'localhost, 127.x.x.x and [::1] (a proxy in front of it should send one of these; or pass --host)\n');
      return;
    }
    const route = routes[path];
    if (route === undefined) {
      send(res, 404, 'text/plain; charset=utf-8', `not found: ${path} (try /, /metrics, /healthz, /api/stats, /api/history)\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', `${req.method ?? 'this method'} not allowed: only GET and HEAD\n`, { allow: 'GET, HEAD' });
      return;
    }
    // Through then(): a route that throws at once is answered like one that rejects, never an uncaught exception.
    Promise.resolve().then(() => route(req, res)).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `tool-sync: ${describeFailure(error)}\n`);
      else res.destroy();
    });
  });

  let port: number;
  try {
    port = await listen(server, options.host, options.port);
  } catch (error) {
    await metrics.stop();
    throw error;
  }
  schedule();
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${hostInUrl}:${port}/`,
    latest: () => (problem === undefined ? Promise.resolve(latest.stats) : Promise.reject(new Error(problem.message))),
    close: async () => {
      stopped = true;
      clearTimeout(sampling);
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
      // A browser's keep-alive connection would hold close() open until it times out.
      server.closeAllConnections();
      await closed;
      await running;
      await metrics.stop();
    },
  };
}
