#!/usr/bin/env node
// Proves tests/support/gcs_server.js speaks real GCS: Google's official Node client (@google-cloud/storage,
// pinned in package.json) runs against it through STORAGE_EMULATOR_HOST — simple and resumable uploads, list
// with pages, download with the client's own hash validation, ranged download, delete, a 403 for a role that
// lacks create, and an injected 503 in Google's error format. Exits non-zero on the first mismatch. Run by ctest (gcs_server_oracle).
'use strict';

const {spawn} = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const assert = require('assert/strict');

const serverScript = path.join(__dirname, '..', 'support', 'gcs_server.js');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHealthy(port, child) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`gcs_server.js exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/_admin/health`);
      if (r.ok) return;
    } catch (e) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('gcs_server.js did not become healthy');
}

async function admin(port, p, body) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, {method: body === undefined ? 'GET' : 'POST',
                                                          body: body === undefined ? undefined : JSON.stringify(body)});
  assert.equal(r.status, 200, `${p}: HTTP ${r.status}`);
  return r.json();
}

async function main() {
  const port = await freePort();
  const configPath = path.join(os.tmpdir(), `sluice-gcs-oracle-${process.pid}.json`);
  fs.writeFileSync(configPath, JSON.stringify({
    buckets: {'oracle-bucket': {bindings: {allUsers: ['objectAdmin']}},
              'read-only-bucket': {bindings: {allUsers: ['objectViewer']}}},
  }));
  const child = spawn(process.execPath, [serverScript, '--port', String(port), '--config', configPath],
                      {stdio: ['ignore', 'inherit', 'inherit']});
  try {
    await waitHealthy(port, child);
    process.env.STORAGE_EMULATOR_HOST = `http://127.0.0.1:${port}`;
    const {Storage} = require('@google-cloud/storage');
    const storage = new Storage({projectId: 'sluice-test'});
    const bucket = storage.bucket('oracle-bucket');

    // Simple (multipart) upload, then download checked by the client's crc32c/md5 validation.
    const small = Buffer.from('{"event":"oracle","properties":{"n":1}}\n');
    await bucket.file('events/small.json').save(small, {resumable: false, contentType: 'application/x-ndjson'});
    const [smallBack] = await bucket.file('events/small.json').download({validation: 'crc32c'});
    assert.deepEqual(smallBack, small);
    const [meta] = await bucket.file('events/small.json').getMetadata();
    assert.equal(meta.size, String(small.length));
    assert.equal(meta.contentType, 'application/x-ndjson');

    // Resumable upload in several 256 KiB-multiple chunks.
    const big = crypto.randomBytes(3 * 1024 * 1024 + 4321);
    await bucket.file('events/big.bin').save(big, {resumable: true, chunkSize: 512 * 1024});
    const [bigBack] = await bucket.file('events/big.bin').download({validation: 'md5'});
    assert.ok(bigBack.equals(big), 'resumable upload round trip');
    const log = await admin(port, '/_admin/log');
    const chunkPuts = log.filter((e) => e.method === 'PUT' && e.url.startsWith('/upload/storage/v1/b/oracle-bucket/o'));
    assert.ok(chunkPuts.length >= 7, `expected >= 7 chunk PUTs, saw ${chunkPuts.length}`);
    assert.ok(chunkPuts.some((e) => /^bytes \d+-\d+\/\*$/.test(e.content_range)), 'chunks with an open total');

    // Ranged download.
    const [part] = await bucket.file('events/big.bin').download({start: 1000, end: 1999, validation: false});
    assert.ok(part.equals(big.subarray(1000, 2000)), 'ranged download');

    // The server checks hashes sent with an upload, as GCS does: a wrong crc32c is refused with 400.
    const bad = await fetch(`http://127.0.0.1:${port}/upload/storage/v1/b/oracle-bucket/o?uploadType=media&name=x`,
                            {method: 'POST', body: 'abc', headers: {'X-Goog-Hash': 'crc32c=AAAAAA=='}});
    assert.equal(bad.status, 400);

    // List with pages: 12 objects, 5 per page.
    for (let i = 0; i < 12; i++) await bucket.file(`paged/${String(i).padStart(2, '0')}`).save(`v${i}`, {resumable: false});
    let [files, next] = await bucket.getFiles({prefix: 'paged/', maxResults: 5, autoPaginate: false});
    const names = files.map((f) => f.name);
    let pages = 1;
    while (next && next.pageToken) {
      [files, next] = await bucket.getFiles(Object.assign({}, next, {autoPaginate: false}));
      names.push(...files.map((f) => f.name));
      pages += 1;
    }
    assert.equal(pages, 3);
    assert.deepEqual(names, Array.from({length: 12}, (_, i) => `paged/${String(i).padStart(2, '0')}`));
    const [all] = await bucket.getFiles({prefix: 'paged/'});
    assert.equal(all.length, 12);
    await bucket.file('root.txt').save('r', {resumable: false});
    const [withDelim, , apiResponse] = await bucket.getFiles({delimiter: '/', autoPaginate: false});
    assert.deepEqual(withDelim.map((f) => f.name), ['root.txt']);
    assert.deepEqual(apiResponse.prefixes.sort(), ['events/', 'paged/']);

    // Delete.
    await bucket.file('events/big.bin').delete();
    const [exists] = await bucket.file('events/big.bin').exists();
    assert.equal(exists, false);

    // A role without create: 403 naming the permission.
    await assert.rejects(storage.bucket('read-only-bucket').file('x').save('x', {resumable: false}),
                         (e) => e.code === 403 && /storage\.objects\.create/.test(e.message));

    // An injected 503 reaches the client as Google's error document (code and reason parsed by the client).
    await admin(port, '/_admin/faults', [{match: 'GET /b/oracle-bucket/o/events%2Fsmall.json', nth: 1, type: '503'}]);
    await assert.rejects(bucket.file('events/small.json').getMetadata(),
                         (e) => e.code === 503 && e.errors[0].reason === 'backendError');
    const [again] = await bucket.file('events/small.json').getMetadata();
    assert.equal(again.name, 'events/small.json');

    console.log('gcs_oracle: @google-cloud/storage agrees with gcs_server.js');
  } finally {
    child.kill('SIGTERM');
    fs.rmSync(configPath, {force: true});
  }
}

main().catch((e) => {
  console.error('gcs_oracle FAILED:', e && e.stack ? e.stack : e);
  process.exit(1);
});
