import { type SyncStats } from '../../models/tool-queries.js';
import { SYNC_STATUS_ORDER } from '../../sync/status-order.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, type SyncCollectionName } from '../../sync/vocabulary.js';
import { formatAge } from '../status-report.js';
import { type HistorySample } from './history.js';

/** What the page shows: one sample of the dashboard and the synced pairs over the last minutes. */
export interface PageView {
  stats: SyncStats;
  /** When `stats` was read (ms since the epoch). */
  sampledAt: number;
  history: readonly HistorySample[];
  /** Which server, database and collection (the line the CLI prints first). */
  target: string;
  /** How often the page asks for new numbers. */
  refreshMs: number;
  /** Why the latest samples failed (the numbers shown are older), and since when (ms since the epoch). */
  problem?: { message: string; since: number };
}

/** The page's live part, which its script fetches and swaps in: the same renderer as the page, so the two cannot disagree. */
export const LIVE_PATH = 'live';

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char] ?? char);

/** A count: grouped digits to read, the plain number in `data-value` for scripts and tests. */
function count(value: number, attributes: string): string {
  return `<span class="n" ${attributes} data-value="${value}">${value.toLocaleString('en-US')}</span>`;
}

const attr = (name: string, value: string): string => `${name}="${escapeHtml(value)}"`;

/** A stacked bar of `parts` (label, value, css class), as inline SVG, with its numbers in its title for screen readers. */
function stackedBar(parts: { label: string; value: number; css: string }[], label: string): string {
  const total = parts.reduce((sum, part) => sum + part.value, 0);
  const title = `${label}: ${parts.map((part) => `${part.label} ${part.value}`).join(', ')}`;
  let x = 0;
  const rects = parts.filter((part) => part.value > 0).map((part) => {
    const width = (part.value / total) * 100;
    const rect = `<rect class="${part.css}" x="${x.toFixed(3)}" y="0" width="${width.toFixed(3)}" height="10"><title>${escapeHtml(`${part.label}: ${part.value}`)}</title></rect>`;
    x += width;
    return rect;
  });
  return `<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" ${attr('aria-label', title)}>`
    + `${total === 0 ? '<rect class="empty" x="0" y="0" width="100" height="10"></rect>' : rects.join('')}</svg>`;
}

/** The synced pairs of one collection over the samples kept (up to the window), as a line; the change beside it. */
function sparkline(history: readonly HistorySample[], name: SyncCollectionName): string {
  const points = history.map((sample) => ({ at: sample.at, value: sample.synced[name] }));
  const first = points[0];
  const last = points[points.length - 1];
  if (first === undefined || last === undefined || points.length < 2) {
    return `<p class="spark-empty" data-collection="${name}" data-field="sparkline" data-points="${points.length}">synced over time: collecting samples…</p>`;
  }
  const values = points.map((point) => point.value);
  const low = Math.min(...values);
  const high = Math.max(...values);
  // From the first sample to the last: the line fills the width from the first minute on; the caption says how long.
  const span = Math.max(1, last.at - first.at);
  const line = points.map((point) => {
    const x = ((point.at - first.at) / span) * 200;
    const y = high === low ? 15 : 28 - ((point.value - low) / (high - low)) * 26;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(' ');
  const change = last.value - first.value;
  const duration = formatAge(last.at - first.at);
  const label = `synced pairs over the last ${duration}: from ${first.value} to ${last.value}`;
  return `<figure class="spark"><svg viewBox="0 0 200 30" preserveAspectRatio="none" role="img" data-collection="${name}" data-field="sparkline" data-points="${points.length}" ${attr('aria-label', label)}>`
    + `<polyline points="${line}"></polyline></svg>`
    + `<figcaption>synced: ${change >= 0 ? '+' : '−'}${Math.abs(change).toLocaleString('en-US')} in the last ${duration} (${low.toLocaleString('en-US')}–${high.toLocaleString('en-US')})</figcaption></figure>`;
}

function collectionSection(stats: SyncStats, name: SyncCollectionName, history: readonly HistorySample[]): string {
  const statuses = stats.byCollection[name];
  const at = (field: string): string => `data-collection="${name}" data-field="${field}"`;
  const bar = stackedBar(SYNC_STATUS_ORDER.map((status) => ({ label: status, value: statuses[status], css: status })), `${name} by status`);
  const legend = SYNC_STATUS_ORDER.map((status) => `<div><dt><i class="swatch ${status}"></i>${status}</dt><dd>${count(statuses[status], `data-collection="${name}" data-status="${status}"`)}</dd></div>`);
  legend.push(`<div><dt><i class="swatch in-flight"></i>in flight</dt><dd>${count(stats.inFlight[name], at('in-flight'))}</dd></div>`);
  const lag = stats.oldestWaitingAgeMs[name];
  const vectors = stats.vectorsByEmbeddingModel?.[name];
  let models: string;
  if (vectors === undefined) models = '<p>embedding models: not counted</p>';
  else if (vectors.length === 0) models = '<p>embedding models: no vectors yet</p>';
  else {
    const swatch = (i: number): string => (vectors.length > 1 ? `<i class="swatch model-${Math.min(i, 3)}"></i>` : '');
    const rows = vectors.map(({ model, vectors: n }, i) => `<tr><td>${swatch(i)}${model === null ? '<em>(not recorded)</em>' : escapeHtml(model)}</td><td>${count(n, `${at('model-vectors')} ${attr('data-model', model ?? '')}`)}</td></tr>`);
    const mix = vectors.length > 1
      ? `<p class="note">${vectors.length} models: a migration is under way</p>${stackedBar(vectors.map(({ model, vectors: n }, i) => ({ label: model ?? '(not recorded)', value: n, css: `model-${Math.min(i, 3)}` })), `${name} vectors by model`)}`
      : '';
    models = `${mix}<table class="models"><thead><tr><th>embedding model</th><th>vectors</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  }
  const deletions = stats.deletions[name];
  return `<section class="collection" data-collection="${name}">`
    + `<h2>${name}</h2>${bar}<dl class="legend">${legend.join('')}</dl>`
    + `<p>lag (oldest pending or stale): <strong ${at('lag')} data-value="${lag ?? ''}">${formatAge(lag)}</strong></p>`
    + `<p>deletions waiting: ${count(deletions.pending, at('deletions-pending'))}, failed: ${count(deletions.failed, at('deletions-failed'))}</p>`
    + `${models}${sparkline(history, name)}</section>`;
}

/** The page's live part: everything the numbers change. */
export function renderLive(view: PageView): string {
  const { stats } = view;
  const overall = SYNC_STATUS_ORDER.map((status) => `<div><dt><i class="swatch ${status}"></i>${status}</dt><dd>${count(stats.byOverallStatus[status], `data-overall="${status}"`)}</dd></div>`);
  const failed = SYNC_ERROR_CODES.filter((code) => stats.failuresByErrorCode[code] > 0);
  const failures = failed.length === 0
    ? '<p>no failed collections</p>'
    : `<table><thead><tr><th>error code</th><th>failed collections</th></tr></thead><tbody>${
      failed.map((code) => `<tr><td>${code}</td><td>${count(stats.failuresByErrorCode[code], `data-error-code="${code}"`)}</td></tr>`).join('')}</tbody></table>`;
  const sampled = new Date(view.sampledAt).toISOString();
  const problem = view.problem === undefined ? '' : `<p class="problem" role="alert" data-field="problem">the database cannot be read since ${
    escapeHtml(new Date(view.problem.since).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}: ${escapeHtml(view.problem.message)}; the numbers below are the last it gave</p>`;
  return `${problem}<p class="sampled">numbers as of <time datetime="${sampled}" data-field="sampled-at">${sampled.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time></p>`
    + `<section class="overall"><h2>tools: ${count(stats.total, 'data-field="total"')}</h2>`
    + stackedBar(SYNC_STATUS_ORDER.map((status) => ({ label: status, value: stats.byOverallStatus[status], css: status })), 'tools by overall status')
    + `<dl class="legend">${overall.join('')}</dl></section>`
    + `<div class="collections">${SYNC_COLLECTION_NAMES.map((name) => collectionSection(stats, name, view.history)).join('')}</div>`
    + `<section class="failures"><h2>failures by error code</h2>${failures}</section>`
    + '<section class="care"><h2>needing care</h2><ul>'
    + `<li>legacy tools without sync metadata (counted as pending): ${count(stats.legacyWithoutMetadata, 'data-field="legacy"')}</li>`
    + `<li>unsettled tools (content written, hashes not verified yet): ${count(stats.unsettled, 'data-field="unsettled"')}</li>`
    + `<li>quarantined tools: ${count(stats.quarantined, 'data-field="quarantined"')}</li>`
    + `<li>unusable tools not quarantined yet: ${stats.unusable === null ? 'not counted' : count(stats.unusable, 'data-field="unusable"')}</li>`
    + '</ul></section>';
}

const STYLE = `
:root { color-scheme: light dark; --synced: #2e8540; --stale: #d4a017; --pending: #7a8a9a; --failed: #c0392b; --in-flight: #6c4fc2; }
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 78rem; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin: 0; } h2 { font-size: 1.1rem; margin: 0 0 .4rem; }
header p, .sampled { color: GrayText; margin: .2rem 0; font-size: .9rem; }
.problem { color: var(--failed); font-weight: 600; margin: .2rem 0; }
.collections { display: grid; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); gap: 1rem; margin: 1rem 0; }
section { border: 1px solid color-mix(in srgb, currentColor 20%, transparent); border-radius: 6px; padding: .8rem 1rem; }
.overall, .failures, .care { margin: 1rem 0; }
svg.bar { width: 100%; height: 14px; display: block; border-radius: 3px; }
.synced { fill: var(--synced); background: var(--synced); } .stale { fill: var(--stale); background: var(--stale); }
.pending { fill: var(--pending); background: var(--pending); } .failed { fill: var(--failed); background: var(--failed); }
.in-flight { background: var(--in-flight); } .empty { fill: color-mix(in srgb, currentColor 12%, transparent); }
.model-0 { fill: #2b6cb0; background: #2b6cb0; } .model-1 { fill: #dd6b20; background: #dd6b20; }
.model-2 { fill: #38a169; background: #38a169; } .model-3 { fill: #805ad5; background: #805ad5; }
dl.legend { display: flex; flex-wrap: wrap; gap: .2rem 1rem; margin: .5rem 0; }
dl.legend div { display: flex; gap: .3rem; } dt, dd { margin: 0; } dd { font-weight: 600; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: .7rem; height: .7rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
table { border-collapse: collapse; font-size: .9rem; } td, th { padding: .1rem .6rem .1rem 0; text-align: left; }
td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: var(--stale); font-weight: 600; margin: .3rem 0; }
.spark { margin: .5rem 0 0; } .spark svg { width: 100%; height: 36px; }
.spark polyline { fill: none; stroke: var(--synced); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.spark figcaption, .spark-empty { font-size: .8rem; color: GrayText; }
#state { font-size: .8rem; }
`;

/**
 * The script: asks for the live part every `refreshMs` and swaps it in, so the numbers move without
 * a reload. Without JavaScript the page still shows every number, and reloads itself (<noscript>).
 */
export function pageScript(refreshMs: number): string {
  return `(() => {
  const live = document.getElementById('live');
  const state = document.getElementById('state');
  state.textContent = 'updates every ${refreshMs / 1000}s';
  const refresh = async () => {
    try {
      const response = await fetch('${LIVE_PATH}', { cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      live.innerHTML = await response.text();
      state.textContent = 'updates every ${refreshMs / 1000}s';
    } catch (error) {
      state.textContent = 'cannot reach tool-sync (' + error.message + '): retrying';
    }
    setTimeout(refresh, ${refreshMs});
  };
  setTimeout(refresh, ${refreshMs});
})();`;
}

/** The whole page: the numbers in the HTML, inline CSS and SVG, one inline script; nothing from elsewhere. */
export function renderPage(view: PageView): string {
  const reloadSeconds = Math.max(1, Math.round(view.refreshMs / 1000));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tool-sync status</title>
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="${reloadSeconds}"></noscript>
<style>${STYLE}</style>
</head>
<body>
<header><h1>tool-sync status</h1><p>${escapeHtml(view.target)}</p><p id="state">reloads every ${reloadSeconds}s</p></header>
<main id="live">${renderLive(view)}</main>
<footer><p class="sampled">also: <a href="metrics">/metrics</a> (Prometheus), <a href="api/stats">/api/stats</a> (the JSON of status --json),
<a href="api/history">/api/history</a>, <a href="healthz">/healthz</a></p></footer>
<script>${pageScript(view.refreshMs)}</script>
</body>
</html>
`;
}
