// Browser test of the web console (docs/console.md), run by ctest (tests/console/CMakeLists.txt):
//
//   node console_browser_test.mjs --binary build/sluice --source . --screenshots build/console-screenshots
//
// Starts moto (S3 + STS + IAM, auth mode) and the real `sluice serve` on free loopback ports, then drives
// Debian's Chromium (headless, fresh profile) with playwright-core: sign in, see a project and its events, create
// a local pipeline in the form and see its days delivered, see the destination check refuse a role without
// s3:PutObject step by step, pause and resume an S3 pipeline, see it fail with the message once the role loses
// PutObject, see a Cloud Import connector's progress and bad lines, and the live /metrics charts. Every request
// the browser makes must go to the Sluice server. Screenshots of each stage are saved. Processes are stopped by
// PID; every wait is bounded.
import {spawn, spawnSync} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {chromium} from 'playwright-core';

// ---- arguments and small helpers ------------------------------------------------------------------------------

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const here = path.dirname(new URL(import.meta.url).pathname);
const SOURCE = path.resolve(arg('source', path.join(here, '..', '..')));
const BINARY = path.resolve(arg('binary', path.join(SOURCE, 'build', 'sluice')));
const SHOTS = path.resolve(arg('screenshots', path.join(SOURCE, 'build', 'console-screenshots')));
const CHROMIUM = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium';
const TOTAL_TIMEOUT_MS = 8 * 60 * 1000;

const log = (...a) => console.log(`[console-test ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failures = 0;
function check(cond, what) {
  if (cond) {
    log('ok   ', what);
  } else {
    failures++;
    log('FAIL ', what);
  }
}
function must(cond, what) {
  if (!cond) throw new Error('precondition failed: ' + what);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// Polls `fn` until it returns a truthy value or `ms` passes (bounded).
async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}` + (last instanceof Error ? ': ' + last.message : ''));
}

const children = [];
function start(cmd, args, opts, logFile) {
  const out = fs.openSync(logFile, 'w');
  const child = spawn(cmd, args, Object.assign({stdio: ['ignore', out, out]}, opts));
  children.push(child);
  return child;
}
async function stop(child, name) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(50);
  if (child.exitCode === null && child.signalCode === null) {
    log(`${name} did not stop on SIGTERM: SIGKILL`);
    child.kill('SIGKILL');
  }
}

async function http(method, url, {headers = {}, body} = {}) {
  const res = await fetch(url, {method, headers, body});
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (e) { /* not JSON */ }
  return {status: res.status, text, json};
}

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

// ---- the test -------------------------------------------------------------------------------------------------

async function main() {
  must(fs.existsSync(BINARY), `the sluice binary at ${BINARY} (build it first)`);
  must(fs.existsSync(CHROMIUM), `Chromium at ${CHROMIUM}: apt-get install -y chromium (README set-up)`);
  const moto = spawnSync('python3', ['-c', 'import moto, boto3']);
  must(moto.status === 0, "python3 with moto and boto3 (see TESTING.md)");
  fs.mkdirSync(SHOTS, {recursive: true});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-console-'));
  log('work dir', work, 'screenshots', SHOTS);

  // moto: S3 + STS + IAM with auth on after the customer world is set up.
  const motoPort = await freePort();
  const motoUrl = `http://127.0.0.1:${motoPort}`;
  const motoProc = start('moto_server', ['-H', '127.0.0.1', '-p', String(motoPort)], {}, path.join(work, 'moto.log'));
  await waitFor(async () => (await http('GET', motoUrl + '/moto-api/')).status === 200, 30000, 'moto to answer');
  const setup = spawnSync('python3', [path.join(SOURCE, 'tests/support/moto_setup.py'), '--endpoint', motoUrl], {encoding: 'utf8'});
  must(setup.status === 0, 'moto_setup.py: ' + setup.stderr);
  const aws = JSON.parse(setup.stdout);
  must((await http('POST', motoUrl + '/moto-api/reset-auth', {headers: {'Content-Type': 'text/plain'}, body: '0'})).status === 200,
       'moto auth mode');
  const motoAdmin = (...a) => {
    const r = spawnSync('python3', [path.join(SOURCE, 'tests/console/moto_admin.py'), motoUrl, aws.admin_access_key_id,
                                    aws.admin_secret_access_key, ...a], {encoding: 'utf8'});
    must(r.status === 0, 'moto_admin.py ' + a[0] + ': ' + r.stderr);
  };

  // Sluice: the real binary, its own identity the assume-only user. --local-export-root confines local
  // pipelines (issue 9); older binaries without the flag are run without it.
  const dataDir = path.join(work, 'data');
  const exportRoot = path.join(work, 'exports');
  fs.mkdirSync(path.join(exportRoot, 'web'), {recursive: true});
  const help = spawnSync(BINARY, ['serve', '--help'], {encoding: 'utf8'});
  const serveArgs = ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--pipeline-delay-minutes', '0', '--log-level', 'info'];
  if ((help.stdout + help.stderr).includes('--local-export-root')) serveArgs.push('--local-export-root', exportRoot);
  else log('note: this binary has no --local-export-root; local pipelines run unconfined');
  const adminToken = randomBytes(24).toString('hex');
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
  Object.assign(env, {
    SLUICE_ADMIN_TOKEN: adminToken, AWS_ACCESS_KEY_ID: aws.access_key_id, AWS_SECRET_ACCESS_KEY: aws.secret_access_key,
    AWS_REGION: aws.region, AWS_DEFAULT_REGION: aws.region, AWS_EC2_METADATA_DISABLED: 'true',
    // The operator's endpoint: STS and S3 of the test world (and an allowed s3_endpoint for tenants).
    AWS_ENDPOINT_URL: motoUrl,
  });
  const sluice = start(BINARY, serveArgs, {env}, path.join(work, 'sluice.log'));
  const base = await waitFor(async () => {
    const url = fs.existsSync(path.join(dataDir, 'server.url')) ? fs.readFileSync(path.join(dataDir, 'server.url'), 'utf8').trim() : '';
    return url && (await http('GET', url + '/healthz')).status === 200 ? url : null;
  }, 30000, 'sluice to answer /healthz');
  log('sluice at', base, 'moto at', motoUrl);
  const admin = {Authorization: 'Bearer ' + adminToken};

  // A project, its external ID as the test roles' trust policies require, and events on four days.
  const created = await http('POST', base + '/api/app/projects', {headers: {...admin, 'Content-Type': 'application/json'}, body: JSON.stringify({name: 'web shop'})});
  must(created.status === 200, 'project create: ' + created.text);
  const project = created.json;
  const ext = await http('POST', `${base}/api/app/projects/${project.id}`, {headers: {...admin, 'Content-Type': 'application/json'},
                                                                           body: JSON.stringify({external_id: aws.external_id})});
  must(ext.status === 200, 'external id: ' + ext.text);
  const basic = {Authorization: 'Basic ' + Buffer.from(project.api_secret + ':').toString('base64')};
  const now = Date.now();
  const dayMs = 86400000;
  const todayStart = now - (now % dayMs);
  const days = [3, 2, 1].map((n) => isoDay(todayStart - n * dayMs));
  const importEvents = async (dayStartMs, count, tag) => {
    const events = [];
    for (let i = 0; i < count; i++) {
      events.push({event: 'purchase', properties: {time: Math.floor((dayStartMs + 3600000 + i * 1000) / 1000), distinct_id: 'u' + i,
                                                   $insert_id: `${tag}-${i}`, amount: i}});
    }
    const r = await http('POST', base + '/import?strict=1', {headers: {...basic, 'Content-Type': 'application/json'}, body: JSON.stringify(events)});
    must(r.status === 200, 'import: ' + r.text);
  };
  for (let i = 0; i < 3; i++) await importEvents(todayStart - (3 - i) * dayMs, 4, 'past' + i);
  // Today: a time that has passed (the hour after midnight may not have, right after midnight).
  const todayEvents = [];
  for (let i = 0; i < 5; i++) {
    todayEvents.push({event: 'view', properties: {time: Math.floor(Math.max(todayStart, now - 120000) / 1000), distinct_id: 'v' + i, $insert_id: 'today-' + i}});
  }
  must((await http('POST', base + '/import?strict=1', {headers: {...basic, 'Content-Type': 'application/json'}, body: JSON.stringify(todayEvents)})).status === 200,
       'import today');
  // One rejected event, so "rejected by reason" has a row.
  await http('POST', base + '/import', {headers: {...basic, 'Content-Type': 'application/json'}, body: JSON.stringify([{event: 'bad', properties: {distinct_id: 'x'}}])});

  // ---- the browser ----------------------------------------------------------------------------------------
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: {width: 1366, height: 900},
    // A zone far from UTC, so the page's "UTC and the viewer's zone" is visible and checked.
    timezoneId: 'America/New_York',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const requests = [];
  const consoleErrors = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('page error: ' + e.message));
  page.setDefaultTimeout(20000);
  const shot = async (name) => {
    await page.screenshot({path: path.join(SHOTS, name + '.png'), fullPage: true});
    log('screenshot', name);
  };
  const origin = new URL(base).origin;

  try {
    // Sign-in: / redirects to /ui/; the keyboard reaches the form.
    await page.goto(base + '/');
    check(page.url() === origin + '/ui/', 'GET / lands on /ui/ (' + page.url() + ')');
    await page.waitForSelector('#signin');
    await shot('01-signin');
    check(await page.evaluate(() => document.activeElement && document.activeElement.id === 'credential'), 'the sign-in field has the keyboard focus');
    await page.fill('#credential', 'wrong-token');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#signin-status.error');
    check((await page.textContent('#signin-status')).includes('did not accept'), 'a wrong token is refused with a message');
    await page.check('#kind-admin');
    await page.fill('#credential', adminToken);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`#projects tr[data-project="${project.id}"]`);
    const todayCell = await page.textContent(`#projects tr[data-project="${project.id}"] [data-field=events_today]`);
    check(todayCell.trim() === '5', `the project shows 5 events today (${todayCell})`);
    check(await page.evaluate((t) => sessionStorage.getItem('sluice.console.auth').includes(t), adminToken), 'the token is in sessionStorage');
    check(!page.url().includes(adminToken), 'the token is not in the URL');
    await page.waitForSelector('#rejected tbody tr', {timeout: 15000});
    check((await page.textContent('#rejected')).length > 0, 'rejected events are listed by reason');
    await page.waitForFunction(() => /events\/s/.test(document.querySelector('#ingest-rate')?.textContent || ''), null, {timeout: 15000});
    check(!(await page.content()).includes(adminToken), 'the token is never rendered');
    check(!(await page.content()).includes(project.api_secret), 'the API secret is never rendered');
    await shot('02-projects');

    // A local pipeline backfilling three days, created in the form.
    await page.click(`#projects a[href="#/project/${project.id}"]`);
    await page.waitForSelector('#pipelines h2');
    await page.click(`a[href="#/project/${project.id}/new-pipeline"]`);
    await page.waitForSelector('#pipeline-form');
    await page.fill('#name', 'local-days');
    await page.selectOption('#type', 'local');
    await page.fill('#from_date', days[0]);
    await page.fill('#to_date', days[2]);
    await page.fill('#local_path', path.join(exportRoot, 'web'));
    await page.click('#pipeline-form button[type=submit]');
    await page.waitForSelector('#form-result a');
    check((await page.textContent('#form-result')).includes('Created pipeline local-days'), 'the form creates the local pipeline');
    await page.click('#form-result a');
    await page.waitForSelector('[data-pipeline="local-days"] .calendar');
    await page.waitForFunction((ds) => ds.every((d) => document.querySelector(`.calendar a[data-day="${d}"]`)?.dataset.state === 'delivered'),
                               days, {timeout: 90000});
    check(true, 'the local pipeline shows its three days delivered');
    await shot('03-local-pipeline-delivered');
    // By keyboard: a day cell is a link; Enter opens the day and moves the focus to its details.
    await page.focus(`.calendar a[data-day="${days[1]}"]`);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#day-detail [data-field=tasks]');
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'day-detail', null, {timeout: 5000});
    check(true, 'a day cell opens by keyboard and the focus moves to the day');
    check((await page.textContent('#day-detail')).includes('Delivered at'), 'a day links to its task history');
    const when = await page.textContent('#day-detail time');
    check(/ UTC \(.* America\/New_York\)/.test(when), 'times are shown in UTC and the viewer\'s zone: ' + when);
    await shot('04-local-day');
    const exported = fs.readdirSync(path.join(exportRoot, 'web'), {recursive: true}).filter((f) => String(f).endsWith('.gz'));
    check(exported.length >= 3, `files were written to the local destination (${exported.length})`);

    // The destination check refuses a role without s3:PutObject: the report, step by step, in the form.
    await page.goto(`${base}/ui/#/project/${project.id}/new-pipeline`);
    await page.waitForSelector('#pipeline-form');
    await page.fill('#name', 's3-days');
    await page.selectOption('#type', 's3');
    await page.fill('#from_date', days[1]);
    await page.fill('#s3_bucket', aws.bucket);
    await page.fill('#s3_region', aws.region);
    await page.fill('#s3_role', aws.roles.no_put);
    await page.fill('#s3_endpoint', motoUrl);
    await page.click('#pipeline-form button[type=submit]');
    await page.waitForSelector('#check-report', {timeout: 90000});
    const putStep = await page.$('#check-report li[data-step="put"][data-result="fail"]');
    check(!!putStep, 'the check report shows the put step failed');
    check(!!(await page.$('#check-report li[data-step="assume-role"][data-result="ok"]')), 'the check report shows assume-role passed');
    check(await page.isVisible('#check-report li[data-step="get"][data-result="skip"]'), 'the check report shows the skipped get step');
    check((await page.$$('#check-report li[data-step]')).length === 7, 'the check report lists all seven steps');
    check((await page.textContent('#check-report')).includes('s3:PutObject'), 'the report names s3:PutObject');
    await shot('05-destination-check-refused');

    // The same pipeline with the full role is created.
    await page.fill('#s3_role', aws.roles.full);
    await page.click('#pipeline-form button[type=submit]');
    await page.waitForFunction(() => /Created pipeline s3-days/.test(document.querySelector('#form-result')?.textContent || ''), null, {timeout: 90000});
    check(true, 'the S3 pipeline is created with the full role');
    await page.click('#form-result a');
    await page.waitForSelector('[data-pipeline="s3-days"] .calendar');
    await page.waitForFunction((ds) => ds.every((d) => document.querySelector(`.calendar a[data-day="${d}"]`)?.dataset.state === 'delivered'),
                               [days[1], days[2]], {timeout: 90000});
    check(true, 'the S3 pipeline delivers its days');

    // Pause and resume from the page.
    await page.click('[data-pipeline="s3-days"] button[data-action="pause"]');
    await page.waitForSelector('[data-pipeline="s3-days"] [data-field=status]:text("paused")');
    const paused = await http('GET', `${base}/api/2.0/nessie/pipeline/jobs`, {headers: basic});
    check(paused.json[String(project.id)].find((j) => j.name === 's3-days').status === 'paused', 'Pause pauses the pipeline (API agrees)');
    await shot('06-s3-paused');
    await page.click('[data-pipeline="s3-days"] button[data-action="resume"]');
    await page.waitForSelector('[data-pipeline="s3-days"] [data-field=status]:text("active")');
    const resumed = await http('GET', `${base}/api/2.0/nessie/pipeline/jobs`, {headers: basic});
    check(resumed.json[String(project.id)].find((j) => j.name === 's3-days').status === 'active', 'Resume resumes it (API agrees)');

    // The role loses s3:PutObject; a late event for a delivered day and Sync now make the export fail.
    motoAdmin('restrict', aws.roles.full, aws.bucket);
    await importEvents(todayStart - dayMs, 1, 'late');
    await page.waitForSelector('[data-pipeline="s3-days"] button[data-action="sync"]');
    await page.click('[data-pipeline="s3-days"] button[data-action="sync"]');
    await page.waitForSelector('[data-pipeline="s3-days"] [data-field=failure]', {timeout: 120000});
    const failure = await page.textContent('[data-pipeline="s3-days"] [data-field=failure]');
    check(/PutObject|denied/i.test(failure), 'the failed pipeline shows the failure message: ' + failure.slice(0, 160));
    check(/What to do/.test(failure), 'the failure says what to do');
    await page.waitForSelector(`.calendar a[data-day="${days[2]}"][data-state="failed"]`, {timeout: 30000});
    check(true, 'the failed day is coloured failed');
    await shot('07-s3-failed');
    await page.click(`.calendar a[data-day="${days[2]}"]`);
    await page.waitForSelector('#day-detail [data-field=day-failure]');
    check(/PutObject|denied/i.test(await page.textContent('#day-detail')), 'the day shows its failure message');
    await shot('08-s3-failed-day');

    // Fix the role and resume from the page: the day is delivered again.
    motoAdmin('restore', aws.roles.full, aws.bucket);
    await page.click('[data-pipeline="s3-days"] button[data-action="resume"]');
    await page.waitForSelector(`.calendar a[data-day="${days[2]}"][data-state="delivered"]`, {timeout: 90000});
    check(!(await page.$('[data-pipeline="s3-days"] [data-field=failure]')), 'after the fix and Resume the failure is gone');

    // Edit through the form: only the changed field is sent (the destination is not checked again).
    await page.click('[data-pipeline="s3-days"] a[href$="/edit"]');
    await page.waitForSelector('#pipeline-form');
    check(await page.isDisabled('#from_date') && await page.isDisabled('#type') && await page.isDisabled('#frequency') &&
          await page.isDisabled('#s3_bucket') && await page.isDisabled('#s3_prefix') && !(await page.isDisabled('#s3_role')),
          'fields that cannot change (from_date, type, frequency, the location) are disabled in the edit form; credentials are not');
    await page.fill('#where', 'properties["amount"] >= 1');
    await page.click('#pipeline-form button[type=submit]');
    await page.waitForFunction(() => /Saved/.test(document.querySelector('#form-result')?.textContent || ''), null, {timeout: 30000});
    const edited = await http('GET', `${base}/api/2.0/nessie/pipeline/jobs`, {headers: basic});
    check(edited.json[String(project.id)].find((j) => j.name === 's3-days').where === 'properties["amount"] >= 1', 'Edit changes the pipeline (API agrees)');
    await shot('09-s3-edited');

    // A Cloud Import connector: progress, counters and the first bad lines.
    const lines = [];
    for (let i = 0; i < 6; i++) lines.push(JSON.stringify({event: 'imported', properties: {time: Math.floor((todayStart - 2 * dayMs) / 1000) + i, distinct_id: 'i' + i, $insert_id: 'imp-' + i}}));
    lines.splice(3, 0, '{"event": "broken", "properties": ');
    const importFile = path.join(work, 'import.json');
    fs.writeFileSync(importFile, lines.join('\n') + '\n');
    motoAdmin('put', aws.import_bucket, 'history/2026.json', importFile);
    const connector = await http('POST', `${base}/api/app/projects/${project.id}/connectors`, {
      headers: {...basic, 'Content-Type': 'application/json'},
      body: JSON.stringify({connector_type: 's3Import', label: 'history',
                            connector_properties: {s3_bucket: aws.import_bucket, s3_prefix: 'history', s3_region: aws.region,
                                                   s3_role: aws.roles.import, s3_endpoint: motoUrl},
                            category_properties: {data_format: 'mixpanel_event', compression: 'none', frequency: 60}})});
    must(connector.status === 200, 'connector create: ' + connector.text);
    await page.goto(`${base}/ui/#/project/${project.id}`);
    await page.waitForSelector('[data-connector] [data-field=run-status]:text("success")', {timeout: 90000});
    const progress = await page.$eval('[data-connector] progress', (p) => p.value);
    check(progress === 1, `the connector's progress bar is full (${progress})`);
    check((await page.textContent('[data-connector] [data-field=events]')).startsWith('6 imported'), 'the connector counts 6 imported events');
    const bad = await page.textContent('[data-connector] [data-field=bad-lines]');
    check(bad.includes('history/2026.json') && bad.includes('4'), 'the first bad line is listed with file and line');
    await shot('10-connector');

    // Live metrics as charts.
    await page.click('a[data-nav=metrics]');
    await page.waitForSelector('#charts figure svg polyline', {timeout: 20000});
    check((await page.$$('#charts figure')).length >= 3, 'the metrics page draws its charts');
    check((await page.textContent('#charts')).includes('Export lag'), 'export lag is charted');
    await shot('11-metrics');

    // Sign out, then in with the project's API secret: straight to the project.
    await page.click('#signout');
    await page.waitForSelector('#signin');
    check(await page.evaluate(() => sessionStorage.getItem('sluice.console.auth') === null), 'sign-out clears session storage');
    await page.check('#kind-secret');
    await page.fill('#credential', project.api_secret);
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-pipeline="s3-days"]');
    check(page.url().endsWith(`#/project/${project.id}`), 'a project secret opens its project');
    check(!(await page.content()).includes(project.api_secret), 'the secret is never rendered');
    await shot('12-project-secret');

    // Every request went to the server; no CSP violation or script error.
    const foreign = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && u !== 'about:blank');
    check(requests.length > 10 && foreign.length === 0, `the page loaded nothing from outside the server (${requests.length} requests, foreign: ${foreign.join(', ') || 'none'})`);
    check(requests.every((u) => !u.includes(adminToken) && !u.includes(project.api_secret)), 'no request URL carries a credential');
    const bad4xx = consoleErrors.filter((t) => !/status of 40[01]/.test(t));
    check(bad4xx.length === 0, 'no script errors or CSP violations: ' + (bad4xx.join(' | ') || 'none'));
  } catch (e) {
    failures++;
    log('FAIL ', e.message);
    await shot('99-failure').catch(() => {});
    log('sluice log tail:\n' + fs.readFileSync(path.join(work, 'sluice.log'), 'utf8').split('\n').slice(-30).join('\n'));
  } finally {
    await context.close().catch(() => {});
    await stop(sluice, 'sluice');
    await stop(motoProc, 'moto');
    fs.rmSync(profile, {recursive: true, force: true});
    if (!failures) fs.rmSync(work, {recursive: true, force: true});
    else log('kept', work, 'for inspection');
  }
}

const timer = setTimeout(() => {
  log('FAIL  the test did not finish within', TOTAL_TIMEOUT_MS / 1000, 's');
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

main().then(() => {
  clearTimeout(timer);
  log(failures ? `${failures} check(s) failed` : 'all checks passed');
  process.exit(failures ? 1 : 0);
}, async (e) => {
  clearTimeout(timer);
  log('FAIL ', e.stack || e.message);
  for (const c of children) await stop(c, 'child');
  process.exit(1);
});
