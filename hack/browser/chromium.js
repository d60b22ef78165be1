// Launches Debian's headless Chromium (/usr/bin/chromium) with playwright-core.
//
// Why this way:
// - Playwright's own browser builds come from a CDN this machine cannot reach,
//   so we never download one (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 at install)
//   and point executablePath at Debian's package (hack/browser/ensure-chromium.sh).
// - Every run gets a fresh, throw-away profile (--user-data-dir): no cookies,
//   cache or service workers leak from one test into the next. Playwright
//   refuses --user-data-dir in launch() args, so this uses
//   launchPersistentContext with a new temp folder, removed on close().
// - The flags keep Chromium from phoning home (sync, component updates,
//   background networking) and from trying QUIC: the only network here is the
//   servers the test starts itself.
//
// Usage:
//   const { launch } = require('./chromium');
//   const b = await launch();            // { context, page, userDataDir, close }
//   await b.page.goto(url);
//   await b.close();                     // closes Chromium, deletes the profile
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const EXECUTABLE = process.env.GUILDNET_CHROMIUM || '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox', // root in CI; the sandbox needs user namespaces we may not have
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function launch(opts = {}) {
  if (!fs.existsSync(EXECUTABLE)) {
    throw new Error(`${EXECUTABLE} is missing: run hack/browser/ensure-chromium.sh (apt-get install chromium)`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'guildnet-chromium-'));
  const cleanup = () => fs.rmSync(userDataDir, { recursive: true, force: true });
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: EXECUTABLE,
      headless: true,
      args: [...ARGS, ...(opts.args || [])],
      viewport: opts.viewport || { width: 1280, height: 800 },
      timeout: opts.timeoutMs || 30000,
    });
  } catch (err) {
    cleanup();
    throw err;
  }
  // A persistent context opens with one blank page; reuse it.
  const page = context.pages()[0] || (await context.newPage());
  let closed = false;
  return {
    context,
    page,
    userDataDir,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await context.close();
      } finally {
        cleanup();
      }
    },
  };
}

module.exports = { launch, EXECUTABLE, ARGS };
