#!/usr/bin/env node
// Logs into a code-server with a headless browser and proves the VS Code
// workbench really connected to its server, then takes a screenshot.
//
//   node codeserver-login.js --url URL --password PW --screenshot FILE
//        [--expect-file NAME] [--timeout-ms N] [--terminal-command CMD]
//        [--wait-stdin]
//
// With --wait-stdin the script starts Chromium, prints "browser ready" on
// stderr and waits for one line on stdin before its first request; that
// line is the password when --password is not given. A caller measuring a
// user who already has a browser open starts it early this way, and can
// pass a password it learns only later.
//
// Steps and what each timing measures (milliseconds from the first request):
//   loginMs      code-server's password page was passed: the answer to the
//                submitted password arrived and was not the login page again
//                (0 when no login page came)
//   workbenchMs  the VS Code workbench element (.monaco-workbench) exists;
//                this needs only HTTP, so it proves little about the proxy
//   connectedMs  the explorer lists --expect-file (a file in the folder
//                code-server opened). The file list arrives only over the
//                WebSocket to the server, so this is the honest "connected"
//                signal (shared/CODE-SERVER.md). Without --expect-file only
//                the transport is checked: a WebSocket got 101 and a frame
//                (weaker: the explorer's own error row can't be told apart
//                from a file, so pass --expect-file whenever you can).
// With --terminal-command CMD, after "connected":
//   terminalReadyMs  an integrated terminal was opened (Ctrl+Shift+`, or the
//                command palette's "Terminal: Create New Terminal" when the
//                key does nothing; terminalOpenedWith says which) and its
//                shell prompt is on screen
//   terminalMs   CMD was typed into the terminal, seen echoed on screen, and
//                Enter pressed. The script then waits for the next prompt
//                (at most 2 s) and takes the screenshot, so the terminal is
//                in it. If CMD is gone from the screen by then (the shell
//                was still starting and dropped it), it is typed again, up to
//                three times; terminalAttempts says how many it took, and
//                terminalMs is the last Enter. CMD may thus run twice, so
//                make it idempotent. Whether it worked is for the caller to
//                check (e.g. a file CMD writes).
//   A fresh folder makes VS Code ask "Do you trust the authors of the files
//   in this folder?" before it starts a shell; the script answers "Trust
//   Folder & Continue" and sets terminalTrusted. With this flag Chromium
//   runs with --disable-webgl: xterm.js otherwise draws the terminal on a
//   WebGL canvas whose text can't be read; without WebGL VS Code falls back
//   to its DOM renderer (.xterm-rows). --timeout-ms bounds the terminal steps afresh,
//   counted from "connected".
//
// Prints one JSON line on stdout, success or not:
//   {"ok":true,"loginMs":..,"workbenchMs":..,"connectedMs":..,"screenshot":..,
//    "websockets":[{"url":..,"status":101,"opened":true,"frames":12,"error":null,"closed":false}, ...]}
//   plus, with --terminal-command: "terminalReadyMs":..,"terminalMs":..,
//    "terminalAttempts":1..3,"terminalTrusted":true|false,
//    "terminalOpenedWith":"keybinding"|"palette"
// On failure it also prints one line "codeserver-login: REASON" on stderr and
// exits 1. The usual failure behind a proxy is a WebSocket refused with 403
// by code-server's Origin check; the page then shows "workbench failed to
// connect ... 1006", so the reason carries the page's visible error text,
// console errors and failed WebSocket handshakes.
'use strict';

const fs = require('fs');
const path = require('path');
const { launch } = require('./chromium');

function usage(msg) {
  if (msg) console.error(`codeserver-login: ${msg}`);
  console.error('usage: node codeserver-login.js --url URL --password PW --screenshot FILE [--expect-file NAME] [--timeout-ms N] [--terminal-command CMD] [--wait-stdin]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { timeoutMs: 60000 };
  const names = { '--url': 'url', '--password': 'password', '--screenshot': 'screenshot', '--expect-file': 'expectFile', '--timeout-ms': 'timeoutMs', '--terminal-command': 'terminalCommand' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--wait-stdin') {
      opts.waitStdin = true;
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
  opts.timeoutMs = Number(opts.timeoutMs);
  if (!opts.url) usage('--url is required');
  if (!opts.screenshot) usage('--screenshot is required');
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) usage('--timeout-ms must be a positive number');
  if (opts.terminalCommand !== undefined && !opts.terminalCommand.trim()) usage('--terminal-command must not be empty');
  if (opts.terminalCommand !== undefined && /[\r\n]/.test(opts.terminalCommand)) usage('--terminal-command must be one line');
  return opts;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The first line read from stream, without its line ending; null at EOF.
function firstLine(stream) {
  return new Promise((resolve) => {
    let buf = '';
    const done = (v) => {
      stream.removeAllListeners('data');
      stream.removeAllListeners('end');
      stream.pause();
      resolve(v);
    };
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl).replace(/\r$/, ''));
    });
    stream.on('end', () => done(null));
  });
}

const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();
// VS Code styles its console lines ("%c ERR color: #f33 ..."); drop that.
const consoleText = (s) => oneLine(String(s).replace(/%c/g, '').replace(/color:\s*#[0-9a-f]+;?/gi, ''));
const noQuery = (u) => u.split('?')[0];
// Chromium reports a refused handshake only as text:
// "Error during WebSocket handshake: Unexpected response code: 403".
const statusIn = (text) => {
  const m = /response code: (\d+)/.exec(text || '');
  return m ? Number(m[1]) : null;
};

// Text a person would see as an error: code-server's login error, VS Code's
// dialogs (e.g. "Cannot reconnect") and notifications ("workbench failed to
// connect to the server ...").
async function visibleErrors(page) {
  try {
    return await page.evaluate(() => {
      const sel = [
        '.login-form .error',
        '.monaco-dialog-box .dialog-message-text',
        '.monaco-dialog-box .dialog-message-detail',
        '.notifications-toasts .notification-list-item-message',
      ];
      const out = [];
      for (const el of document.querySelectorAll(sel.join(','))) {
        const t = (el.textContent || '').trim();
        if (t && !out.includes(t)) out.push(t);
      }
      return out;
    });
  } catch {
    return []; // page navigating; try again on the next poll
  }
}

// True when the explorer shows an entry named name.
async function explorerLists(page, name) {
  try {
    return await page.evaluate((name) => {
      const rows = document.querySelectorAll('.explorer-folders-view .monaco-list-row');
      for (const row of rows) {
        const label = row.querySelector('.label-name');
        if ((label ? label.textContent : row.textContent || '').trim() === name) return true;
      }
      return false;
    }, name);
  } catch {
    return false;
  }
}

// The active integrated terminal as the DOM shows it: whether it, its xterm
// and its DOM renderer's rows exist, the non-blank rows' text, and
// the buttons of a dialog in front (VS Code's workspace trust question).
async function terminalState(page) {
  try {
    return await page.evaluate(() => {
      const wrapper = document.querySelector('.terminal-wrapper.active') || document.querySelector('.terminal-wrapper');
      const xterm = wrapper && wrapper.querySelector('.xterm');
      const rows = wrapper && wrapper.querySelector('.xterm-rows');
      const lines = rows
        ? [...rows.children].map((r) => (r.textContent || '').replace(/\s+$/, '')).filter((t) => t.trim())
        : [];
      const textarea = wrapper && wrapper.querySelector('.xterm-helper-textarea');
      const dialog = [...document.querySelectorAll('.monaco-dialog-box .monaco-button')].map((b) => (b.textContent || '').trim());
      return {
        wrapper: !!wrapper,
        xterm: !!xterm,
        domRenderer: !!rows,
        lines,
        focused: !!textarea && document.activeElement === textarea,
        dialog,
      };
    });
  } catch {
    return { wrapper: false, xterm: false, domRenderer: false, lines: [], focused: false, dialog: [] };
  }
}

const squash = (s) => String(s).replace(/\s+/g, '');
const lastLines = (st) => (st.lines.length ? st.lines.slice(-3).join(' / ') : '(nothing)');

// Opens an integrated terminal, types command into it and presses Enter.
// Fills result.terminalReadyMs, terminalMs and terminalTrusted; returns an
// error text or null.
async function runTerminal(page, command, timeoutMs, elapsed, result) {
  const deadline = Date.now() + timeoutMs;
  const secs = `${Math.round(timeoutMs / 1000)} s`;

  // Answers the workspace trust dialog when it is up; true when it was.
  const answerTrust = async (st) => {
    if (!st.dialog.some((t) => /^Trust/.test(t))) return false;
    await page.locator('.monaco-dialog-box .monaco-button', { hasText: /^Trust/ }).first().click({ timeout: 5000 }).catch(() => {});
    result.terminalTrusted = true;
    return true;
  };

  // 1. Open it: the keybinding of "Terminal: Create New Terminal". When no
  //    terminal shows up within a while (focus somewhere that eats the key),
  //    the command palette, once.
  await page.keyboard.press('Control+Shift+Backquote');
  result.terminalOpenedWith = 'keybinding';
  const keyAt = Date.now();
  let usedPalette = false;
  let st;
  while (true) {
    st = await terminalState(page);
    if (st.lines.length) break; // the prompt (or whatever the shell said first)
    if (Date.now() >= deadline) {
      if (st.dialog.length) return `terminal did not open within ${secs}: a dialog is in the way (buttons: ${st.dialog.join(', ')})`;
      if (!st.wrapper) return `terminal did not open within ${secs}`;
      if (st.xterm && !st.domRenderer) return `terminal opened but showed no readable prompt within ${secs}: it draws on a canvas (WebGL?), not in .xterm-rows`;
      return `terminal opened but showed no shell prompt within ${secs}`;
    }
    if (await answerTrust(st)) {
      await sleep(200);
      continue;
    }
    if (!st.wrapper && !usedPalette && Date.now() - keyAt > 15000) {
      usedPalette = true;
      result.terminalOpenedWith = 'palette';
      await openTerminalWithPalette(page).catch(() => {});
    }
    await sleep(200);
  }
  result.terminalReadyMs = elapsed();
  const prompt = st.lines[st.lines.length - 1].trim();

  // 2. Type the command into xterm's hidden textarea, wait for the echo and
  //    press Enter. 3. Wait for the next prompt (at most 2 s).
  // The echo is the screen's text ending with the command (the cursor sits
  // after it); a terminal VS Code revived may show the same command earlier.
  // Once the shell has read the line the command stays on screen above the
  // next prompt. When it is gone, the shell was not reading yet (its start-up
  // threw away what arrived before, which VS Code may already have drawn):
  // the command is typed again, at most three times in all.
  const want = squash(command);
  const textarea = page.locator('.terminal-wrapper.active .xterm-helper-textarea').first();
  for (let attempt = 1; ; attempt++) {
    try {
      await textarea.focus({ timeout: Math.max(1, Math.min(10000, deadline - Date.now())) });
    } catch {
      return `terminal opened but its input could not be focused (terminal shows: ${lastLines(st)})`;
    }
    const seenBefore = squash(st.lines.join('')).split(want).length;
    await page.keyboard.type(command);
    const echoWait = Math.max(1000, Math.min(10000, deadline - Date.now()));
    const echoDeadline = Date.now() + echoWait;
    while (true) {
      st = await terminalState(page);
      const text = squash(st.lines.join(''));
      if (text.endsWith(want) || text.split(want).length > seenBefore) break;
      if (Date.now() >= echoDeadline) {
        return `the typed command did not show in the terminal within ${Math.round(echoWait / 1000)} s (terminal shows: ${lastLines(st)}; input focused: ${st.focused})`;
      }
      await sleep(100);
    }
    const before = st.lines.join('\n');
    await page.keyboard.press('Enter');
    result.terminalMs = elapsed();
    result.terminalAttempts = attempt;

    const promptDeadline = Date.now() + 2000;
    while (Date.now() < promptDeadline) {
      st = await terminalState(page);
      const last = st.lines.length ? st.lines[st.lines.length - 1].trim() : '';
      if (last === prompt && st.lines.join('\n') !== before) break;
      await sleep(100);
    }
    if (squash(st.lines.join('')).split(want).length > seenBefore) return null;
    if (attempt >= 3 || Date.now() >= deadline) {
      return `the command vanished from the terminal after Enter, ${attempt} times (terminal shows: ${lastLines(st)})`;
    }
  }
}

// "Terminal: Create New Terminal" from the command palette (F1).
async function openTerminalWithPalette(page) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget .quick-input-box input').first();
  await input.waitFor({ state: 'visible', timeout: 5000 });
  await input.fill('>Terminal: Create New Terminal');
  const row = page.locator('.quick-input-widget .monaco-list-row .label-name', { hasText: /^Terminal: Create New Terminal$/ }).first();
  await row.waitFor({ state: 'visible', timeout: 5000 });
  await row.click();
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const result = { ok: false, url: opts.url, loginMs: null, workbenchMs: null, connectedMs: null, screenshot: null, websockets: [] };
  if (opts.terminalCommand !== undefined) Object.assign(result, { terminalReadyMs: null, terminalMs: null, terminalAttempts: 0, terminalTrusted: false, terminalOpenedWith: null });
  const consoleErrors = [];
  const pageErrors = [];
  // One entry per WebSocket the page opened, filled in from Playwright's
  // events (frames, errors) and the DevTools protocol (handshake status,
  // which Playwright does not expose).
  const sockets = [];
  const byRequestId = new Map();

  // WebGL off for the terminal: see the header.
  const browser = await launch(opts.terminalCommand !== undefined ? { args: ['--disable-webgl'] } : {});
  const { page, context } = browser;
  if (opts.waitStdin) {
    console.error('browser ready');
    const line = await firstLine(process.stdin);
    if (line === null) {
      await browser.close().catch(() => {});
      console.error('codeserver-login: --wait-stdin: stdin closed before a line came');
      process.exit(1);
    }
    if (opts.password === undefined) opts.password = line;
  }
  const deadline = Date.now() + opts.timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());
  const start = Date.now();
  const elapsed = () => Date.now() - start;
  // Wall-clock time of the first request, so a caller can line the browser's
  // timings up with its own (e.g. from kubectl apply).
  result.startEpochMs = start;

  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(consoleText(msg.text()).slice(0, 300));
  });
  page.on('pageerror', (err) => pageErrors.push(oneLine(err.message).slice(0, 300)));
  page.on('websocket', (ws) => {
    const s = { url: ws.url(), status: null, opened: false, frames: 0, error: null, closed: false };
    sockets.push(s);
    ws.on('framereceived', () => {
      s.frames++;
      s.opened = true;
    });
    ws.on('socketerror', (e) => {
      s.error = s.error || oneLine(e);
      if (s.status === null) s.status = statusIn(s.error);
    });
    ws.on('close', () => { s.closed = true; });
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketCreated', (e) => byRequestId.set(e.requestId, e.url));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const url = byRequestId.get(e.requestId);
    // The 'websocket' event and this one race; attach to the first socket of
    // that URL without a status yet.
    const s = sockets.find((x) => x.url === url && x.status === null);
    if (s) {
      s.status = e.response.status;
      if (e.response.status === 101) s.opened = true;
    }
  });
  cdp.on('Network.webSocketFrameError', (e) => {
    const s = sockets.find((x) => x.url === byRequestId.get(e.requestId) && !x.error);
    if (s) {
      s.error = oneLine(e.errorMessage);
      if (s.status === null) s.status = statusIn(s.error);
    }
  });

  const fail = (reason) => {
    result.reason = reason;
    result.consoleErrors = consoleErrors.slice(-10);
    result.pageErrors = pageErrors.slice(-10);
    return false;
  };

  const run = async () => {
    try {
      await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: remaining() });
    } catch (err) {
      return fail(`cannot load ${opts.url}: ${oneLine(err.message).split(' Call log')[0]}`);
    }

    // 1. The password page (code-server redirects to ./login when auth is on).
    // The first page may be a step on the way: workspaces/proxy turns
    // redirects into a page that refreshes (kube-apiserver's aggregation
    // layer refuses 3xx answers), so wait for either destination.
    const password = page.locator('.login-form input[name="password"]');
    await Promise.race([
      password.first().waitFor({ state: 'attached', timeout: remaining() }),
      page.locator('.monaco-workbench').first().waitFor({ state: 'attached', timeout: remaining() }),
    ]).catch(() => {});
    if (await password.count()) {
      if (opts.password === undefined) return fail('code-server asks for a password and --password was not given');
      await password.fill(opts.password);
      // loginMs is when the answer to the POST (a redirect to the workbench,
      // or the login page again) is committed, before the workbench's large
      // scripts load; the DOM is then checked for a login error.
      await Promise.all([
        page.waitForNavigation({ waitUntil: 'commit', timeout: remaining() }).catch(() => {}),
        page.locator('.login-form input[type="submit"]').click(),
      ]);
      const answeredAt = elapsed();
      await page.waitForLoadState('domcontentloaded', { timeout: remaining() }).catch(() => {});
      if (await page.locator('.login-form input[name="password"]').count()) {
        const loginError = (await visibleErrors(page)).join('; ');
        return fail(`login failed: ${loginError || 'still on the login page after submitting the password'} (at ${page.url()})`);
      }
      result.loginMs = answeredAt;
    } else {
      result.loginMs = 0;
    }

    // 2. The workbench element: HTML, scripts and styles loaded over HTTP.
    try {
      await page.locator('.monaco-workbench').first().waitFor({ state: 'attached', timeout: remaining() });
    } catch {
      const errs = await visibleErrors(page);
      return fail(`workbench did not load at ${page.url()}${errs.length ? ': ' + errs.join('; ') : ''}`);
    }
    result.workbenchMs = elapsed();

    // 3. Connected: the explorer lists the expected file. Poll so that a
    //    connection error shown by VS Code ends the wait early.
    while (Date.now() < deadline) {
      const connected = opts.expectFile
        ? await explorerLists(page, opts.expectFile)
        : sockets.some((x) => x.status === 101 && x.frames > 0);
      if (connected) {
        result.connectedMs = elapsed();
        return true;
      }
      const errs = (await visibleErrors(page)).filter((t) => /connect|reconnect|websocket|1006|403/i.test(t));
      if (errs.length) return fail(`workbench failed to connect: ${errs.join('; ')}`);
      await sleep(100);
    }
    const errs = await visibleErrors(page);
    const what = opts.expectFile ? `the explorer did not list ${opts.expectFile}` : 'no WebSocket opened';
    return fail(`workbench failed to connect: ${what} within ${opts.timeoutMs} ms${errs.length ? '; page says: ' + errs.join('; ') : ''}`);
  };

  let ok = false;
  try {
    ok = await run();
    if (ok && opts.terminalCommand !== undefined) {
      const err = await runTerminal(page, opts.terminalCommand, opts.timeoutMs, elapsed, result);
      if (err) ok = fail(err);
    }
  } catch (err) {
    fail(`unexpected error: ${oneLine(err.message)}`);
  }

  // A screenshot either way: on failure it shows what the person would see.
  try {
    fs.mkdirSync(path.dirname(path.resolve(opts.screenshot)), { recursive: true });
    // Generous: on a busy 2-core machine the workbench can take a while to paint.
    await page.screenshot({ path: opts.screenshot, timeout: 60000 });
    result.screenshot = path.resolve(opts.screenshot);
  } catch (err) {
    if (ok) {
      ok = false;
      fail(`screenshot failed: ${oneLine(err.message)}`);
    }
  }

  result.websockets = sockets.map(({ url, status, opened, frames, error, closed }) => ({ url, status, opened, frames, error, closed }));
  result.ok = ok;
  result.finalUrl = page.url();
  await browser.close().catch(() => {});

  if (!ok) {
    // Failed handshakes are the usual cause behind a proxy; name them,
    // grouped (VS Code retries, so there are many alike), without the
    // reconnection tokens.
    const bad = result.websockets.filter((s) => !s.opened || (s.status !== null && s.status !== 101));
    let reason = result.reason;
    if (bad.length) {
      const groups = new Map();
      for (const s of bad) {
        const key = s.status !== null ? `HTTP ${s.status}` : s.error || 'no response';
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(s);
      }
      const parts = [...groups].map(([key, list]) => `${key} x${list.length} (${noQuery(list[0].url)})`);
      reason += `; ${bad.length} of ${result.websockets.length} WebSocket handshakes failed: ${parts.join(', ')}`;
    } else if (!result.websockets.length && result.workbenchMs !== null) {
      reason += '; the page opened no WebSocket';
    }
    // The last console errors not already said by the handshake summary.
    const other = consoleErrors.filter((e) => !/^WebSocket connection to/.test(e));
    if (other.length) reason += `; last console errors: ${other.slice(-2).map((e) => e.slice(0, 160)).join(' | ')}`;
    result.reason = reason;
    console.log(JSON.stringify(result));
    console.error(`codeserver-login: ${reason}`);
    process.exit(1);
  }
  console.log(JSON.stringify(result));
}

main().catch((err) => {
  console.error(`codeserver-login: ${oneLine(err.stack || err)}`);
  process.exit(1);
});
