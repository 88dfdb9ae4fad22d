// CORS through a real browser: Debian's headless Chromium (driven by playwright-core) opens a page served from
// one loopback port; the page loads the mixpanel-browser npm bundle and sends to the real `sluice serve` on
// another port (another origin). Checks that
//   - mixpanel-browser's track() with custom xhr_headers (which forces a preflight) is answered and stored,
//   - a fetch() with a custom header (preflight) to /track is readable by the page and stored,
//   - a cross-origin fetch() to the admin API is blocked by the browser,
//   - a form another site's page posts to the pipeline API is refused (403) even when the browser holds the
//     project's API secret for Basic authentication (cross-site request forgery), while the same request from
//     a client that is not a browser passes,
// and reads the events back through /api/2.0/export.
//
// Usage: node cors_browser.test.mjs --sluice /path/to/build/sluice [--chromium /usr/bin/chromium]
// Exit code 0 on success; every failure prints what was expected. Everything listens on 127.0.0.1 only, the
// server is stopped by its PID, and every wait is bounded.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const sluiceBinary = arg('--sluice', path.join(here, '..', '..', 'build', 'sluice'));
const chromiumPath = arg('--chromium', '/usr/bin/chromium');
const bundlePath = path.join(here, 'node_modules', 'mixpanel-browser', 'dist', 'mixpanel.module.js');

const failures = [];
function check(ok, message) {
  if (!ok) failures.push(message);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withDeadline(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/// Starts `sluice serve` on a free loopback port; resolves with {child, url, dataDir}.
async function startSluice() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cors-'));
  fs.mkdirSync(path.join(dataDir, 'exports'));
  const child = spawn(sluiceBinary, ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn',
                                     '--local-export-root', path.join(dataDir, 'exports')],
                      { stdio: ['ignore', 'inherit', 'inherit'] });
  const urlFile = path.join(dataDir, 'server.url');
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`sluice serve exited during start-up (${child.exitCode})`);
    if (fs.existsSync(urlFile)) {
      const url = fs.readFileSync(urlFile, 'utf8').trim();
      if (url) {
        try {
          const r = await fetch(`${url}/healthz`);
          if (r.status === 200) return { child, url, dataDir };
        } catch { /* not answering yet */ }
      }
    }
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('sluice serve did not answer /healthz within 30 s');
}

/// The page origin: serves the test page and the mixpanel-browser bundle.
async function startPageServer() {
  const bundle = fs.readFileSync(bundlePath);
  const server = http.createServer((req, res) => {
    if (req.url === '/mixpanel.module.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(bundle);
    } else if (req.url === '/' || req.url.startsWith('/index.html')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><head><title>cors test</title></head><body>cors test</body></html>');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

function utcDay(offsetDays) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

async function main() {
  const sluice = await startSluice();
  const page_server = await startPageServer();
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cors-chromium-'));
  let context;
  try {
    const adminToken = fs.readFileSync(path.join(sluice.dataDir, 'admin-token'), 'utf8').trim();
    const created = await fetch(`${sluice.url}/api/app/projects`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'browser' }),
    });
    if (created.status !== 200) throw new Error(`project create answered ${created.status}: ${await created.text()}`);
    const project = await created.json();

    context = await withDeadline(chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    }), 60000, 'launching Chromium');
    const page = context.pages()[0] || await context.newPage();
    // Every request the page makes, to see the preflights.
    const seen = [];
    page.on('request', (r) => seen.push(`${r.method()} ${r.url()}`));
    context.on('request', (r) => seen.push(`${r.method()} ${r.url()}`));
    await withDeadline(page.goto(`${page_server.url}/index.html`), 30000, 'loading the page');
    check(page_server.url !== sluice.url, `the page (${page_server.url}) and Sluice (${sluice.url}) are different origins`);

    // 1. mixpanel-browser, as a site would use it, with a custom header (a non-simple request: preflight).
    const sdk = await withDeadline(page.evaluate(async ({ token, apiHost }) => {
      const { default: mixpanel } = await import('/mixpanel.module.js');
      return await new Promise((resolve) => {
        mixpanel.init(token, {
          api_host: apiHost,
          batch_requests: false,
          xhr_headers: { 'X-Sluice-Test': 'cors' },
          persistence: 'localStorage',
          ip: false,
          loaded: (mp) => {
            mp.identify('browser-user-1');
            mp.track('Browser Event', { plan: 'pro', via: 'mixpanel-browser' }, (response) => resolve({ response }));
          },
        });
      });
    }, { token: project.token, apiHost: sluice.url }), 30000, 'mixpanel.track');
    check(sdk.response === 1 || (sdk.response && sdk.response.status === 1),
          `mixpanel-browser's track callback got success, got ${JSON.stringify(sdk.response)}`);

    // 2. fetch() with a custom header: the browser preflights, then the page may read the answer.
    const fetched = await withDeadline(page.evaluate(async ({ token, apiHost }) => {
      const event = { event: 'Fetch Event', properties: { token, distinct_id: 'browser-user-2', $insert_id: 'fetch-1',
                                                          time: Math.floor(Date.now() / 1000) } };
      const data = btoa(JSON.stringify(event));
      try {
        const r = await fetch(`${apiHost}/track?verbose=1`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Custom-Header': 'preflight-please' },
          body: `data=${encodeURIComponent(data)}`,
        });
        return { status: r.status, body: await r.text() };
      } catch (e) {
        return { error: String(e) };
      }
    }, { token: project.token, apiHost: sluice.url }), 30000, 'fetch to /track');
    check(fetched.status === 200 && /"status":\s*1/.test(fetched.body || ''),
          `a preflighted fetch() to /track is readable by the page: ${JSON.stringify(fetched)}`);

    // 3. The admin API stays closed to other origins, with and without credentials.
    const admin = await withDeadline(page.evaluate(async ({ apiHost, adminToken }) => {
      const out = {};
      for (const [name, init] of [['withAuth', { headers: { Authorization: `Bearer ${adminToken}` } }],
                                  ['plain', {}]]) {
        try {
          const r = await fetch(`${apiHost}/api/app/projects`, init);
          out[name] = { status: r.status, body: await r.text() };
        } catch (e) {
          out[name] = { blocked: String(e) };
        }
      }
      return out;
    }, { apiHost: sluice.url, adminToken }), 30000, 'fetch to the admin API');
    check(admin.withAuth && admin.withAuth.blocked !== undefined,
          `a cross-origin fetch to /api/app/projects with the admin token is blocked: ${JSON.stringify(admin.withAuth)}`);
    check(admin.plain && admin.plain.blocked !== undefined,
          `a cross-origin fetch to /api/app/projects cannot be read: ${JSON.stringify(admin.plain)}`);

    check(seen.some((s) => s.startsWith('POST ') && s.includes('/track')), 'the browser sent POST /track');

    const auth = `Basic ${Buffer.from(`${project.api_secret}:`).toString('base64')}`;

    // 4. Cross-site request forgery: a browser that holds the project's API secret for Basic authentication
    // (as after a user typed it into the login prompt; Playwright's httpCredentials answers the 401 challenge
    // the same way) opens another site's page, which posts a form to the pipeline API.
    const pipelineApi = `${sluice.url}/api/2.0/nessie/pipeline`;
    const createdPipeline = await fetch(`${pipelineApi}/create`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `type=local&local_path=csrf&name=csrf-target&from_date=${utcDay(-1)}`,
    });
    check(createdPipeline.status === 200, `a local pipeline was created: ${createdPipeline.status} ${await createdPipeline.text()}`);
    const pipelineStatus = async () => {
      const r = await fetch(`${pipelineApi}/status?name=csrf-target&summary=true`, { headers: { Authorization: auth } });
      return (await r.json()).status;
    };
    const browser = await withDeadline(chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    }), 60000, 'launching a second Chromium');
    try {
      const withSecret = await browser.newContext({ httpCredentials: { username: project.api_secret, password: '' } });
      const attacker = await withSecret.newPage();
      await withDeadline(attacker.goto(`${page_server.url}/index.html`), 30000, 'loading the other site\'s page');
      const [answer] = await withDeadline(Promise.all([
        attacker.waitForNavigation(),
        attacker.evaluate((action) => {
          const form = document.createElement('form');
          form.method = 'POST';
          form.action = action;
          const input = document.createElement('input');
          input.name = 'name';
          input.value = 'csrf-target';
          form.appendChild(input);
          document.body.appendChild(form);
          form.submit();
        }, `${pipelineApi}/pause`),
      ]), 30000, 'the cross-site form post');
      const answered = answer ? await answer.text() : '';
      check(answer && answer.status() === 403 && answered.includes('cross-site request refused'),
            `another site's form post to pipeline/pause is refused: ${answer && answer.status()} ${answered.slice(0, 200)}`);
      check(await pipelineStatus() === 'active', 'the pipeline is still active after the refused post');
      // The browser did hold the secret: the same context reading a project API from the address bar (no other
      // site involved) is answered.
      const direct = await withDeadline(attacker.goto(`${pipelineApi}/status?name=csrf-target&summary=true`), 30000,
                                        'a same-browser read');
      check(direct && direct.status() === 200, `the browser holds the secret: a read it navigates to is answered (${direct && direct.status()})`);
    } finally {
      await browser.close().catch(() => {});
    }
    // A client that is not a browser sends neither Sec-Fetch-Site nor Origin, and passes.
    const paused = await fetch(`${pipelineApi}/pause`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'name=csrf-target',
    });
    check(paused.status === 200, `pipeline/pause from a client that is not a browser is answered: ${paused.status}`);
    check(await pipelineStatus() === 'paused', 'and the pipeline is paused');

    // 5. Both events are stored: read them back through the export API.
    const exported = await fetch(
        `${sluice.url}/api/2.0/export?from_date=${utcDay(-1)}&to_date=${utcDay(1)}`, { headers: { Authorization: auth } });
    const text = await exported.text();
    check(exported.status === 200, `export answered 200 (${exported.status}: ${text.slice(0, 200)})`);
    const events = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    const sdkEvent = events.find((e) => e.event === 'Browser Event');
    check(sdkEvent && sdkEvent.properties.plan === 'pro' && sdkEvent.properties.distinct_id === 'browser-user-1',
          `the mixpanel-browser event was stored: ${JSON.stringify(sdkEvent)}`);
    check(events.some((e) => e.event === 'Fetch Event' && e.properties.distinct_id === 'browser-user-2'),
          'the fetch() event was stored');
  } finally {
    if (context) await context.close().catch(() => {});
    page_server.server.close();
    sluice.child.kill('SIGTERM');
    for (let i = 0; i < 200 && sluice.child.exitCode === null; i++) await sleep(50);
    if (sluice.child.exitCode === null) sluice.child.kill('SIGKILL');
    fs.rmSync(sluice.dataDir, { recursive: true, force: true });
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

try {
  await withDeadline(main(), 240000, 'the CORS browser test');
} catch (e) {
  failures.push(String(e && e.stack || e));
  console.log(`FAIL ${e && e.stack || e}`);
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('all CORS browser checks passed');
process.exit(0);
