#!/usr/bin/env node
// Drives the portal's UI in headless Chromium the way a person would, from
// the printed URL to a running workspace (issue #6, "What it must show").
// test/e2e runs it against the local control plane and plays the other
// client and the kubelet when asked.
//
//   node portal-e2e.js --url URL --join-file FILE --screenshots DIR
//        [--namespace NS] [--cluster-name NAME] [--database DB] [--table T]
//        [--workspace W] [--step-timeout-ms N] [--timeout-ms N]
//   node portal-e2e.js --preflight
//
// --url is the line `guildnet-portal serve` printed (with ?token=); the join
// file is uploaded through the join form. --namespace is the namespace the
// join file's context names: the UI must land there by itself.
//
// Output: one JSON line per event on stdout, as it happens (the Go side
// reads them while the browser stays open):
//   {"step":S,"status":"start"}
//   {"step":S,"status":"ok","ms":N,"screenshot":FILE,...facts}
//   {"step":"waiting-for-live-row","key":K,"table":T}     the Go side now
//        inserts row K with another client (kube-apiserver, not the portal);
//        the page must show it without a reload
//   {"step":"waiting-for-workspace-running","workspace":W}  the Go side now
//        plays the kubelet (pod Ready); the page must show Running
//   {"step":"done","status":"ok","timings":{...},"screenshots":[...],"consoleErrorCount":N}
// On failure, one line
//   {"step":S,"status":"failed","error":..,"visibleErrors":[..],"screenshot":FILE,"url":..,...}
// then "portal-e2e: step S: REASON" on stderr, exit 1. visibleErrors are the
// texts of the page's error boxes (data-testid=error and friends,
// portal/ui/TESTIDS.md), which usually say why (an HTTP status and the
// cluster's message).
//
// Every wait is bounded: by --step-timeout-ms, and the whole run by
// --timeout-ms. Waits poll the page, and an error box next to the action just
// taken ends the wait at once instead of running into the timeout.
'use strict';

const fs = require('fs');
const path = require('path');

function usage(msg) {
  if (msg) console.error(`portal-e2e: ${msg}`);
  console.error(
    'usage: node portal-e2e.js --url URL --join-file FILE --screenshots DIR [--namespace NS] [--cluster-name NAME]\n' +
      '       [--database DB] [--table T] [--workspace W] [--step-timeout-ms N] [--timeout-ms N]\n' +
      '       node portal-e2e.js --preflight',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    clusterName: 'local',
    database: 'shop',
    table: 'items',
    workspace: 'ide',
    stepTimeoutMs: 60000,
    timeoutMs: 270000,
    preflight: false,
  };
  const names = {
    '--url': 'url',
    '--join-file': 'joinFile',
    '--screenshots': 'screenshots',
    '--namespace': 'namespace',
    '--cluster-name': 'clusterName',
    '--database': 'database',
    '--table': 'table',
    '--workspace': 'workspace',
    '--step-timeout-ms': 'stepTimeoutMs',
    '--timeout-ms': 'timeoutMs',
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--preflight') {
      opts.preflight = true;
      continue;
    }
    let [flag, value] = argv[i].split(/=(.*)/s, 2);
    if (!(flag in names)) usage(`unknown argument ${argv[i]}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      value = argv[++i];
    }
    opts[names[flag]] = value;
  }
  if (opts.preflight) return opts;
  for (const k of ['stepTimeoutMs', 'timeoutMs']) {
    opts[k] = Number(opts[k]);
    if (!Number.isFinite(opts[k]) || opts[k] <= 0) usage(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be a positive number`);
  }
  if (!opts.url) usage('--url is required (the line guildnet-portal serve printed, with ?token=)');
  if (!opts.joinFile) usage('--join-file is required');
  if (!opts.screenshots) usage('--screenshots is required');
  if (!fs.existsSync(opts.joinFile)) usage(`--join-file ${opts.joinFile} does not exist`);
  return opts;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const sel = (testid, attrs = {}) =>
  `[data-testid="${testid}"]` + Object.entries(attrs).map(([k, v]) => `[data-${k}="${v}"]`).join('');

// playwrightError shortens Playwright's message to its first line and the
// locator it was waiting for (the rest of its call log is noise here).
function playwrightError(err) {
  const msg = String(err.message || err);
  const [head, log = ''] = msg.split(/Call log:/);
  const waiting = /waiting for (.*)/.exec(log);
  return oneLine(head) + (waiting ? ` (waiting for ${oneLine(waiting[1])})` : '');
}

// A failure of one step: what was expected, and what the page showed.
class StepError extends Error {}

// The texts of every visible error box of the page (or below scope): the
// UI's `error` boxes, the row browser's `live-error`, the namespace picker's
// `namespace-error` and `cluster-missing`.
async function visibleErrors(page, scope = '') {
  const ids = ['error', 'live-error', 'namespace-error', 'cluster-missing'];
  const selector = ids.map((id) => `${scope} [data-testid="${id}"]`.trim()).join(',');
  try {
    return await page.evaluate((selector) => {
      const out = [];
      for (const el of document.querySelectorAll(selector)) {
        if (!el.getClientRects().length) continue; // hidden
        const t = (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim();
        const title = el.getAttribute('title');
        const body = title && !t.includes(title) ? `${t} (${title})` : t;
        const text = `${el.getAttribute('data-testid')}: ${body}`;
        if (body && !out.includes(text)) out.push(text);
      }
      return out;
    }, selector);
  } catch {
    return []; // the page is navigating; the next poll sees it
  }
}

async function preflight() {
  // Loading both proves the npm packages are installed and the launcher
  // is in place; RunBrowserScript already checked /usr/bin/chromium.
  const { EXECUTABLE } = require('./chromium');
  if (!fs.existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: run hack/browser/ensure-chromium.sh`);
  emit({ preflight: 'ok', chromium: EXECUTABLE, playwrightCore: require('playwright-core/package.json').version });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.preflight) return preflight();
  const { launch } = require('./chromium');

  fs.mkdirSync(opts.screenshots, { recursive: true });
  const deadline = Date.now() + opts.timeoutMs;
  const timings = {};
  const screenshots = [];
  const consoleErrors = [];
  const jsErrors = [];
  let current = 'launch';

  const browser = await launch();
  const { page } = browser;
  page.setDefaultTimeout(opts.stepTimeoutMs);
  page.on('console', (msg) => {
    // 4xx answers log "Failed to load resource" (TESTIDS.md): kept for the
    // report, never a failure by themselves.
    if (msg.type() === 'error') consoleErrors.push(oneLine(msg.text()).slice(0, 300));
  });
  page.on('pageerror', (err) => jsErrors.push(`${current}: ${oneLine(err.message).slice(0, 300)}`));

  const budget = (ms = opts.stepTimeoutMs) => Math.max(1, Math.min(ms, deadline - Date.now()));

  // poll calls check until it returns a truthy value, which it returns. It
  // fails at once when an error box shows below failScope (the action's
  // own form), and after timeoutMs with what and what the page last showed.
  async function poll(what, check, { timeoutMs, failScope, describe } = {}) {
    const until = Date.now() + budget(timeoutMs);
    let last;
    while (Date.now() < until) {
      try {
        const v = await check();
        if (v) return v;
      } catch (err) {
        last = playwrightError(err);
      }
      if (failScope) {
        const errs = await visibleErrors(page, failScope);
        // The texts go into the report's visibleErrors (once).
        if (errs.length) throw new StepError(`${what}: an error box appeared in ${failScope} instead`);
      }
      await sleep(200);
    }
    let state = '';
    if (describe) {
      try {
        state = await describe();
      } catch {}
    }
    const ms = Math.round(budget(timeoutMs));
    throw new StepError(`${what}: not seen within ${ms} ms${state ? ` (the page shows ${state})` : ''}${last ? `; last error: ${last}` : ''}`);
  }

  const count = (selector) => page.locator(selector).count();
  // data(selector, 'status') is the first match's data-status.
  const data = (selector, name) => page.locator(selector).first().getAttribute(`data-${name}`, { timeout: 1000 });
  const text = async (selector) => oneLine(await page.locator(selector).first().innerText({ timeout: 1000 }));
  const hash = () => new URL(page.url()).hash;

  async function shot(name) {
    const file = path.resolve(opts.screenshots, name);
    await page.screenshot({ path: file, fullPage: true, timeout: 30000 });
    screenshots.push(file);
    return file;
  }

  async function step(name, fn) {
    current = name;
    const t0 = Date.now();
    emit({ step: name, status: 'start' });
    const facts = (await fn()) || {};
    timings[name] = Date.now() - t0;
    emit({ step: name, status: 'ok', ms: timings[name], ...facts });
  }

  // A Ready status cell (ReadyCell: data-status, data-reason) of one row.
  async function waitReady(what, rowSel, cellTestid, failScope) {
    const cell = `${rowSel} ${sel(cellTestid)}`;
    await poll(`${what} Ready=True`, async () => (await data(cell, 'status')) === 'True', {
      failScope,
      describe: async () => `status "${await data(cell, 'status')}", reason "${await data(cell, 'reason')}": ${await text(cell)}`,
    });
    return { reason: await data(cell, 'reason') };
  }

  const db = opts.database;
  const tableName = `${db}.${opts.table}`;
  let clusterId = '';
  let ns = opts.namespace || '';

  const run = async () => {
    await step('open', async () => {
      // The token link sets the session cookie and redirects to the app;
      // with nothing joined the app shows the clusters page.
      await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: budget() });
      const u = new URL(page.url());
      if (u.searchParams.has('token')) throw new StepError(`still at the token URL ${u.pathname}${u.search.replace(/token=[^&]+/, 'token=…')} after loading it`);
      await poll('the clusters page with no cluster joined (clusters-empty)', () => count(sel('clusters-empty')), {
        failScope: 'body',
        describe: async () => `URL ${hash() || '/'}, ${oneLine((await page.locator('body').innerText()).slice(0, 200))}`,
      });
      return { url: u.origin + u.pathname + u.hash, screenshot: await shot('01-portal-open.png') };
    });

    await step('join', async () => {
      const form = sel('join-form');
      await page.getByTestId('join-file').setInputFiles(opts.joinFile);
      await page.getByTestId('join-name').fill(opts.clusterName);
      await page.getByTestId('join-button').click();
      await poll('the join result (join-result)', () => count(sel('join-result')), { failScope: form });
      const row = sel('cluster-row');
      await poll('the joined cluster in the list (cluster-row)', async () => (await count(row)) === 1);
      clusterId = await data(row, 'cluster-id');
      // Columns: name, id, server, defaults (clusters.tsx).
      const [name, , server, defaults] = (await page.locator(`${row} td`).allInnerTexts()).map(oneLine);
      if (name !== opts.clusterName) throw new StepError(`the joined cluster is listed as "${name}", want "${opts.clusterName}"`);
      return { clusterId, name, server, defaults, screenshot: await shot('02-cluster-joined.png') };
    });

    await step('open-cluster', async () => {
      // The cluster's link goes on to its default namespace: the one the
      // join file's context names.
      await page.locator(`${sel('cluster-row', { 'cluster-id': clusterId })} ${sel('cluster-open')}`).click();
      const prefix = `#/c/${clusterId}/`;
      const h = await poll(`the cluster's workspaces page (${prefix}NS/workspaces)`, async () => {
        const h = hash();
        return h.startsWith(prefix) && h.endsWith('/workspaces') && (await count(`${sel('ws-empty')},${sel('ws-table')}`)) ? h : '';
      }, { failScope: 'main', describe: async () => `URL ${hash()}` });
      const landed = decodeURIComponent(h.slice(prefix.length, -'/workspaces'.length));
      if (ns && landed !== ns) throw new StepError(`the UI opened namespace ${landed}, want ${ns} (the join file's namespace)`);
      ns = landed;
      // A ServiceAccount may not list namespaces: the picker is then a text
      // field saying why. Either way it must name the namespace.
      const picker = (await count(sel('namespace-select'))) ? 'namespace-select' : 'namespace-input';
      const shown = await page.getByTestId(picker).inputValue({ timeout: budget() });
      if (shown !== ns) throw new StepError(`the namespace picker (${picker}) shows "${shown}", want "${ns}"`);
      return { namespace: ns, picker };
    });

    await step('database', async () => {
      await page.getByTestId('nav-data').click();
      await poll('the databases page (db-empty)', () => count(sel('db-empty')), { failScope: 'main' });
      const form = sel('db-create-form');
      await page.getByTestId('db-name').fill(db);
      await page.getByTestId('db-create').click();
      const row = sel('db-row', { name: db });
      await poll(`database ${db} in the list`, () => count(row), { failScope: form });
      const { reason } = await waitReady(`database ${db}`, row, 'db-ready', form);
      return { database: db, reason, screenshot: await shot('03-database-ready.png') };
    });

    await step('table', async () => {
      const form = sel('table-create-form');
      // Preact sets an option's value as a property, not an attribute: ask
      // the element rather than a CSS [value=] selector.
      const offered = () => page.getByTestId('table-database').evaluate((s) => [...s.options].map((o) => o.value), null, { timeout: 1000 });
      await poll(`database ${db} offered in the table form`, async () => (await offered()).includes(db), {
        describe: async () => `options ${JSON.stringify(await offered())}`,
      });
      await page.getByTestId('table-database').selectOption(db);
      await page.getByTestId('table-name').fill(opts.table);
      await page.getByTestId('table-create').click();
      const row = sel('table-row', { name: tableName });
      await poll(`table ${tableName} in the list`, () => count(row), { failScope: form });
      const { reason } = await waitReady(`table ${tableName}`, row, 'table-ready', form);
      return { table: tableName, reason, screenshot: await shot('04-table-ready.png') };
    });

    await step('row-browser', async () => {
      await page.locator(`${sel('table-row', { name: tableName })} ${sel('table-rows')}`).click();
      const want = `#/c/${clusterId}/${ns}/tables/${tableName}`;
      await poll(`the row browser at ${want}`, () => decodeURIComponent(hash()) === want, { describe: async () => `URL ${hash()}` });
      const live = sel('live-indicator');
      await poll('the live indicator at "live" (tables/watch open)', async () => (await data(live, 'state')) === 'live', {
        failScope: 'main',
        describe: async () => `live-indicator "${await data(live, 'state')}"`,
      });
      await poll('an empty table (rows-empty)', () => count(sel('rows-empty')), { failScope: 'main' });
      return { screenshot: await shot('05-row-browser.png') };
    });

    await step('insert-row', async () => {
      const form = sel('insert-form');
      const row = { id: 'from-ui', name: 'typed in the browser', n: 1 };
      await page.getByTestId('insert-row-text').fill(JSON.stringify(row));
      await page.getByTestId('insert-row-button').click();
      const result = await poll('the insert result', async () => {
        const n = await count(sel('insert-result'));
        return n && (await text(sel('insert-result')));
      }, { failScope: form });
      if (!/inserted 1\b/.test(result)) throw new StepError(`the insert result says "${result}", want "inserted 1, …"`);
      const rowSel = sel('row', { key: row.id });
      await poll(`row ${row.id} in the table`, () => count(rowSel), { failScope: 'main' });
      const cell = await text(`${rowSel} [data-field="name"]`);
      if (cell !== row.name) throw new StepError(`row ${row.id} shows name "${cell}", want "${row.name}"`);
      return { key: row.id, result, screenshot: await shot('06-row-inserted.png') };
    });

    await step('live-row', async () => {
      // A marker in this document: if the page reloaded to show the row,
      // the marker would be gone.
      const marker = `e2e-${Date.now()}`;
      await page.evaluate((m) => {
        window.__portalE2E = m;
      }, marker);
      const key = 'from-other-client';
      emit({ step: 'waiting-for-live-row', key, table: tableName, namespace: ns });
      const rowSel = sel('row', { key });
      await poll(`row ${key}, inserted by another client, shown live (no reload)`, async () =>
        (await count(rowSel)) > 0 && (await count(sel('recent-change', { type: 'ADDED', key }))) > 0, {
        describe: async () => `live-indicator "${await data(sel('live-indicator'), 'state')}", ${await count(sel('row'))} rows, ${await count(sel('recent-change'))} recent changes`,
      });
      const same = await page.evaluate(() => window.__portalE2E);
      if (same !== marker) throw new StepError(`row ${key} appeared, but the page was reloaded (the UI must follow tables/watch)`);
      const state = await data(sel('live-indicator'), 'state');
      if (state !== 'live') throw new StepError(`row ${key} appeared, but the live indicator says "${state}"`);
      const cell = await text(`${rowSel} [data-field="name"]`);
      return { key, name: cell, screenshot: await shot('07-row-from-other-client.png') };
    });

    await step('workspace', async () => {
      await page.getByTestId('nav-workspaces').click();
      await poll('the workspaces page (ws-empty)', () => count(sel('ws-empty')), { failScope: 'main' });
      const form = sel('ws-create-form');
      await page.getByTestId('ws-name').fill(opts.workspace);
      await page.getByTestId('ws-create').click();
      await poll('the create confirmation (ws-created)', () => count(sel('ws-created')), { failScope: form });
      const row = sel('ws-row', { name: opts.workspace });
      const phase = `${row} ${sel('ws-phase')}`;
      const reason = `${row} ${sel('ws-reason')}`;
      // The reconciler writes a phase and a Ready condition (Starting:
      // there is no kubelet yet).
      await poll(`workspace ${opts.workspace} with a phase and a Ready condition`, async () =>
        (await count(row)) && (await data(phase, 'phase')) && (await data(reason, 'status')), {
        failScope: form,
        describe: async () => `phase "${await text(phase)}", reason "${await text(reason)}"`,
      });
      return {
        workspace: opts.workspace,
        phase: await text(phase),
        reason: await text(reason),
        screenshot: await shot('08-workspace-created.png'),
      };
    });

    await step('workspace-running', async () => {
      emit({ step: 'waiting-for-workspace-running', workspace: opts.workspace, namespace: ns });
      const row = sel('ws-row', { name: opts.workspace });
      const phase = `${row} ${sel('ws-phase')}`;
      const ready = `${row} ${sel('ws-ready')}`;
      const reason = `${row} ${sel('ws-reason')}`;
      await poll(`workspace ${opts.workspace} Running with 1 ready replica`, async () =>
        (await data(phase, 'phase')) === 'Running' && (await text(ready)) === '1' && (await data(reason, 'status')) === 'True', {
        timeoutMs: opts.stepTimeoutMs * 1.5,
        describe: async () => `phase "${await text(phase)}", ready "${await text(ready)}", reason "${await text(reason)}"`,
      });
      return { phase: await text(phase), reason: await text(reason), screenshot: await shot('09-workspace-running.png') };
    });

    if (jsErrors.length) {
      current = 'page-errors';
      throw new StepError(`the page threw ${jsErrors.length} uncaught error(s): ${jsErrors.slice(0, 3).join(' | ')}`);
    }
  };

  let failure = null;
  try {
    await run();
  } catch (err) {
    failure = err instanceof StepError ? err.message : `unexpected error: ${playwrightError(err)}`;
  }

  if (failure) {
    const report = { step: current, status: 'failed', error: failure, visibleErrors: await visibleErrors(page), url: page.url().replace(/token=[^&]+/, 'token=…') };
    try {
      report.screenshot = await shot(`failed-${current}.png`);
    } catch (err) {
      report.screenshotError = oneLine(err.message);
    }
    report.jsErrors = jsErrors.slice(-5);
    report.consoleErrors = consoleErrors.slice(-5);
    report.timings = timings;
    emit(report);
    await browser.close().catch(() => {});
    const extra = report.visibleErrors.length ? `; page shows: ${report.visibleErrors.join('; ')}` : '';
    console.error(`portal-e2e: step ${current}: ${failure}${extra}; screenshot ${report.screenshot || '(none)'}`);
    process.exit(1);
  }
  await browser.close().catch(() => {});
  emit({ step: 'done', status: 'ok', timings, screenshots, consoleErrorCount: consoleErrors.length });
}

main().catch((err) => {
  console.error(`portal-e2e: ${oneLine(err.stack || err)}`);
  process.exit(1);
});
