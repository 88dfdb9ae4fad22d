#!/usr/bin/env node
// A small GCS JSON-API server for Sluice's test suite (no GCS emulator can be installed here). Node stdlib only.
// Loopback only; started by tests on a free port and stopped by PID (tests/support/gcs_server.h).
//
//   node gcs_server.js --port 18080 --config config.json
//
// config.json:
//   { "accounts": { "sluice@p.iam.gserviceaccount.com": { "public_key": "-----BEGIN PUBLIC KEY-----…",
//                                                          "key_id": "k1" } },
//     "buckets": { "data": { "bindings": { "sluice@p.iam.gserviceaccount.com": ["objectAdmin"],
//                                          "allUsers": ["objectViewer"] } } },
//     "token_ttl_seconds": 3600 }
//
// What it speaks (what Google's client and Sluice use):
//   POST /token                                  OAuth2 JWT-bearer: verifies the RS256 assertion against the
//                                                account's public key, aud (this URL), scope, iat/exp
//   POST /upload/storage/v1/b/B/o?uploadType=media|multipart|resumable[&name=N][&kmsKeyName=K]
//   PUT|DELETE /upload/storage/v1/b/B/o?uploadType=resumable&upload_id=U   chunks ("Content-Range: bytes A-B/T|*",
//                                                308 + "Range: bytes=0-N" until complete), status query, cancel
//   GET /storage/v1/b/B/o?prefix&delimiter&maxResults&pageToken&startOffset&endOffset   list pages
//   GET /storage/v1/b/B/o/N[?alt=media]          metadata or bytes (Range; x-goog-hash crc32c + md5)
//   GET /download/storage/v1/b/B/o/N?alt=media   bytes
//   DELETE /storage/v1/b/B/o/N
//   GET /storage/v1/b/B/iam/testPermissions?permissions=P&permissions=Q
//   GET /storage/v1/b/B                          bucket metadata
//   GET /computeMetadata/v1/instance/service-accounts/default/token|email   a GCE metadata server for
//                                                config.metadata_account (needs Metadata-Flavor: Google)
// Every storage path is also served without the /storage/v1 prefix (Google's client uses /b/… with
// STORAGE_EMULATOR_HOST). Requests without Authorization act as "allUsers"; a Bearer token must be one this
// server issued and not expired (401 otherwise). Roles: objectViewer (get, list), objectCreator (create),
// objectUser/objectAdmin (create, delete, get, list, update); overwriting an object also needs delete, as on GCS.
// Denials are 403 naming the missing permission in Google's words.
//
// Test hooks (no auth; loopback only):
//   GET  /_admin/health
//   POST /_admin/faults   [{"match":"PUT /upload","nth":2,"type":"503"|"429"|"rateLimit"|"reset"|"partial"|
//                           "expire_tokens","count":1}]   nth counts requests whose "METHOD URL CONTENT-RANGE"
//                           contains match; "partial" keeps half of a resumable chunk (308 with a shorter Range)
//   POST /_admin/bindings {"bucket":"data","bindings":{…}}
//   POST /_admin/expire-tokens
//   GET  /_admin/log      [{"method","url","auth","content_range"}] (auth: "bearer"|"none")
//   GET  /_admin/object?bucket=B&name=N   raw bytes of a stored object (assertions)
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const zlib = require('zlib');

const args = process.argv.slice(2);
function argValue(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const port = parseInt(argValue('--port', '0'), 10);
const configPath = argValue('--config', '');
const config = configPath ? JSON.parse(fs.readFileSync(configPath, 'utf8')) : {};
const accounts = config.accounts || {};
const buckets = new Map();
for (const [name, b] of Object.entries(config.buckets || {})) {
  buckets.set(name, {bindings: b.bindings || {}, objects: new Map()});
}
const tokenTtl = config.token_ttl_seconds || 3600;
const tokens = new Map();  // token -> {email, expires}
const sessions = new Map();  // upload_id -> session
let faults = [];
const requestLog = [];
let generation = 1000;

const ROLES = {
  objectViewer: ['storage.objects.get', 'storage.objects.list'],
  objectCreator: ['storage.objects.create'],
  objectUser: ['storage.objects.create', 'storage.objects.delete', 'storage.objects.get', 'storage.objects.list',
               'storage.objects.update'],
  objectAdmin: ['storage.objects.create', 'storage.objects.delete', 'storage.objects.get', 'storage.objects.list',
                'storage.objects.update', 'storage.objects.getIamPolicy', 'storage.objects.setIamPolicy'],
};

// CRC32C (Castagnoli), reflected, as GCS reports it (base64 of the big-endian 4 bytes).
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32c(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}
const md5 = (buf) => crypto.createHash('md5').update(buf).digest('base64');

function sendJson(res, status, obj, headers = {}) {
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, Object.assign({'Content-Type': 'application/json; charset=UTF-8',
                                       'Content-Length': body.length}, headers));
  res.end(body);
}
function googleError(res, status, reason, message, headers = {}) {
  sendJson(res, status, {error: {code: status, message,
                                 errors: [{message, domain: 'global', reason}]}}, headers);
}
function denied(res, principal, permission, resource) {
  const who = principal === 'allUsers' ? 'Anonymous caller' : principal;
  googleError(res, 403, 'forbidden',
              `${who} does not have ${permission} access to the Google Cloud Storage ${resource}. ` +
              `Permission '${permission}' denied on resource (or it may not exist).`);
}

function permissionsOf(bucket, principal) {
  const perms = new Set();
  for (const who of [principal, 'allUsers']) {
    for (const role of bucket.bindings[who] || []) for (const p of ROLES[role.replace(/^roles\/storage\./, '')] || []) perms.add(p);
  }
  return perms;
}

function objectResource(host, bucketName, o) {
  const enc = encodeURIComponent(o.name);
  const r = {
    kind: 'storage#object', id: `${bucketName}/${o.name}/${o.generation}`, name: o.name, bucket: bucketName,
    selfLink: `http://${host}/storage/v1/b/${bucketName}/o/${enc}`,
    mediaLink: `http://${host}/download/storage/v1/b/${bucketName}/o/${enc}?generation=${o.generation}&alt=media`,
    generation: String(o.generation), metageneration: '1', contentType: o.contentType,
    size: String(o.data.length), md5Hash: o.md5, crc32c: o.crc32c, etag: o.etag,
    timeCreated: o.updated, updated: o.updated, storageClass: 'STANDARD',
  };
  if (o.contentEncoding) r.contentEncoding = o.contentEncoding;
  if (o.kmsKeyName) r.kmsKeyName = o.kmsKeyName + '/cryptoKeyVersions/1';
  if (o.metadata) r.metadata = o.metadata;
  return r;
}

// Checks client-supplied hashes (metadata crc32c/md5Hash, X-Goog-Hash header) against the bytes. Returns an
// error message or null.
function hashMismatch(data, meta, googHash) {
  const want = {crc32c: meta.crc32c, md5: meta.md5Hash};
  if (googHash) {
    for (const part of googHash.split(',')) {
      const i = part.indexOf('=');
      if (i > 0) want[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
  }
  if (want.crc32c && want.crc32c !== crc32c(data)) {
    return `Provided CRC32C "${want.crc32c}" doesn't match calculated CRC32C "${crc32c(data)}".`;
  }
  if (want.md5 && want.md5 !== md5(data)) {
    return `Provided MD5 hash "${want.md5}" doesn't match calculated MD5 hash "${md5(data)}".`;
  }
  return null;
}

function storeObject(bucket, name, data, meta, kmsKeyName) {
  generation += 1;
  const o = {name, data, generation, contentType: meta.contentType || 'application/octet-stream',
             contentEncoding: meta.contentEncoding || '', crc32c: crc32c(data), md5: md5(data),
             etag: crypto.createHash('md5').update(String(generation)).digest('base64').slice(0, 12),
             updated: new Date().toISOString(), kmsKeyName: kmsKeyName || meta.kmsKeyName || '',
             metadata: meta.metadata};
  bucket.objects.set(name, o);
  return o;
}

// Permission for creating `name`: create, plus delete when it overwrites (as GCS requires).
function checkCreate(res, bucket, principal, name) {
  const perms = permissionsOf(bucket, principal);
  if (!perms.has('storage.objects.create')) return denied(res, principal, 'storage.objects.create', 'object'), false;
  if (bucket.objects.has(name) && !perms.has('storage.objects.delete')) {
    return denied(res, principal, 'storage.objects.delete', 'object'), false;
  }
  return true;
}

function parseMultipart(body, contentType) {
  const m = /boundary="?([^";]+)"?/.exec(contentType || '');
  if (!m) return null;
  const delim = Buffer.from('--' + m[1]);
  const parts = [];
  let pos = body.indexOf(delim);
  while (pos >= 0) {
    let start = pos + delim.length;
    if (body.slice(start, start + 2).toString() === '--') break;
    if (body.slice(start, start + 2).toString() === '\r\n') start += 2;
    const next = body.indexOf(delim, start);
    if (next < 0) break;
    let part = body.slice(start, next);
    if (part.slice(-2).toString() === '\r\n') part = part.slice(0, -2);
    const sep = part.indexOf('\r\n\r\n');
    const headers = sep >= 0 ? part.slice(0, sep).toString() : '';
    parts.push({headers, data: sep >= 0 ? part.slice(sep + 4) : Buffer.alloc(0)});
    pos = next;
  }
  return parts;
}

function parseRangeHeader(h, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(h || '');
  if (!m) return null;
  let start, end;
  if (m[1] === '') { start = Math.max(0, size - parseInt(m[2], 10)); end = size - 1; }
  else { start = parseInt(m[1], 10); end = m[2] === '' ? size - 1 : Math.min(parseInt(m[2], 10), size - 1); }
  if (start >= size || start > end) return {unsatisfiable: true};
  return {start, end};
}

function takeFault(line) {
  for (const f of faults) {
    if (f.count <= 0 || !line.includes(f.match || '')) continue;
    f.seen = (f.seen || 0) + 1;
    if (f.seen >= (f.nth || 1)) { f.count -= 1; return f; }
  }
  return null;
}

function verifyAssertion(assertion, audience) {
  const parts = (assertion || '').split('.');
  if (parts.length !== 3) return 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.';
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch (e) { return 'Invalid JWT: not JSON.'; }
  if (header.alg !== 'RS256') return 'Invalid JWT: alg must be RS256.';
  const account = accounts[claims.iss];
  if (!account) return `Invalid grant: account not found (${claims.iss}).`;
  if (account.key_id && header.kid !== account.key_id) return 'Invalid JWT Signature.';
  const ok = crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]), account.public_key,
                           Buffer.from(parts[2], 'base64url'));
  if (!ok) return 'Invalid JWT Signature.';
  if (claims.aud !== audience) return `Invalid JWT: aud must be ${audience}.`;
  if (!String(claims.scope || '').split(' ').some((s) => s.startsWith('https://www.googleapis.com/auth/devstorage') ||
                                                     s === 'https://www.googleapis.com/auth/cloud-platform')) {
    return 'Invalid JWT: scope has no storage scope.';
  }
  const now = Date.now() / 1000;
  if (!(claims.exp - claims.iat <= 3600 && claims.exp > now && claims.iat <= now + 300)) {
    return 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.';
  }
  return {email: claims.iss};
}

function handleToken(req, res, body) {
  const form = new URLSearchParams(body.toString());
  if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
    return sendJson(res, 400, {error: 'unsupported_grant_type', error_description: 'Invalid grant_type.'});
  }
  const v = verifyAssertion(form.get('assertion'), `http://${req.headers.host}/token`);
  if (typeof v === 'string') return sendJson(res, 400, {error: 'invalid_grant', error_description: v});
  const token = 'ya29.' + crypto.randomBytes(24).toString('hex');
  tokens.set(token, {email: v.email, expires: Date.now() + tokenTtl * 1000});
  sendJson(res, 200, {access_token: token, expires_in: tokenTtl, token_type: 'Bearer'});
}

// The GCE/GKE metadata server's token source, for config.metadata_account (GCE_METADATA_HOST points clients here).
function handleMetadata(req, res, what) {
  if (req.headers['metadata-flavor'] !== 'Google') {
    res.writeHead(403, {'Content-Type': 'text/plain'});
    return res.end('Missing Metadata-Flavor:Google header.');
  }
  const email = config.metadata_account;
  if (!email) { res.writeHead(404); return res.end('no service account'); }
  if (what === 'email') { res.writeHead(200, {'Content-Type': 'application/text', 'Metadata-Flavor': 'Google'}); return res.end(email); }
  if (what !== 'token') { res.writeHead(404); return res.end('not found'); }
  const token = 'ya29.md.' + crypto.randomBytes(24).toString('hex');
  tokens.set(token, {email, expires: Date.now() + tokenTtl * 1000});
  sendJson(res, 200, {access_token: token, expires_in: tokenTtl, token_type: 'Bearer'}, {'Metadata-Flavor': 'Google'});
}

function principalOf(req, res) {
  const auth = req.headers.authorization;
  if (!auth) return 'allUsers';
  const m = /^Bearer (.+)$/.exec(auth);
  const t = m && tokens.get(m[1]);
  if (!t || t.expires <= Date.now()) {
    googleError(res, 401, 'authError', 'Invalid Credentials', {'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/"'});
    return null;
  }
  return t.email;
}

function handleUpload(req, res, url, bucketName, bucket, body, principal, fault) {
  const type = url.searchParams.get('uploadType');
  const host = req.headers.host;
  const kms = url.searchParams.get('kmsKeyName') || '';
  if (req.method === 'POST' && (type === 'media' || type === 'multipart')) {
    let meta = {}, data = body;
    if (type === 'multipart') {
      const parts = parseMultipart(body, req.headers['content-type']);
      if (!parts || parts.length < 2) return googleError(res, 400, 'invalid', 'Multipart body is malformed.');
      try { meta = JSON.parse(parts[0].data.toString() || '{}'); } catch (e) {
        return googleError(res, 400, 'parseError', 'Metadata part is not JSON.');
      }
      data = parts[1].data;
      const ct = /content-type:\s*([^\r\n]+)/i.exec(parts[1].headers);
      if (!meta.contentType && ct) meta.contentType = ct[1].trim();
    } else {
      meta.contentType = req.headers['content-type'];
      if (url.searchParams.get('contentEncoding')) meta.contentEncoding = url.searchParams.get('contentEncoding');
    }
    const name = meta.name || url.searchParams.get('name');
    if (!name) return googleError(res, 400, 'required', 'Required: object name.');
    if (!checkCreate(res, bucket, principal, name)) return;
    const mismatch = hashMismatch(data, meta, req.headers['x-goog-hash']);
    if (mismatch) return googleError(res, 400, 'invalid', mismatch);
    return sendJson(res, 200, objectResource(host, bucketName, storeObject(bucket, name, data, meta, kms)));
  }
  if (req.method === 'POST' && type === 'resumable') {
    let meta = {};
    if (body.length) {
      try { meta = JSON.parse(body.toString()); } catch (e) { return googleError(res, 400, 'parseError', 'Metadata is not JSON.'); }
    }
    const name = meta.name || url.searchParams.get('name');
    if (!name) return googleError(res, 400, 'required', 'Required: object name.');
    if (!checkCreate(res, bucket, principal, name)) return;
    if (!meta.contentType && req.headers['x-upload-content-type']) meta.contentType = req.headers['x-upload-content-type'];
    const id = 'ADPycd' + crypto.randomBytes(12).toString('hex');
    sessions.set(id, {bucketName, name, meta, kms, principal, chunks: [], size: 0});
    const loc = `http://${host}/upload/storage/v1/b/${bucketName}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
    res.writeHead(200, {'Location': loc, 'X-GUploader-UploadID': id, 'Content-Length': 0});
    return res.end();
  }
  const id = url.searchParams.get('upload_id');
  const s = id && sessions.get(id);
  if (!s || s.bucketName !== bucketName) return googleError(res, 404, 'notFound', 'No such upload session.');
  if (req.method === 'DELETE') {
    sessions.delete(id);
    res.writeHead(499, {'Content-Length': 0});
    return res.end();
  }
  if (req.method !== 'PUT') return googleError(res, 405, 'methodNotAllowed', 'Method not allowed.');
  const cr = req.headers['content-range'] || '';
  let m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr);
  let start = null, total = null;
  if (m) {
    start = parseInt(m[1], 10);
    if (parseInt(m[2], 10) - start + 1 !== body.length) return googleError(res, 400, 'invalid', 'Content-Range does not match the body length.');
    total = m[3] === '*' ? null : parseInt(m[3], 10);
  } else if ((m = /^bytes \*\/(\d+|\*)$/.exec(cr))) {
    total = m[1] === '*' ? null : parseInt(m[1], 10);
    if (body.length) return googleError(res, 400, 'invalid', 'A status query has no body.');
  } else if (!cr && body.length) {
    start = 0; total = body.length;  // single-request resumable upload
  } else {
    return googleError(res, 400, 'invalid', `Bad Content-Range "${cr}".`);
  }
  if (start !== null) {
    if (start > s.size) {
      // A gap: the client skipped bytes. GCS answers with what it has.
      return sendResumeIncomplete(res, s);
    }
    let data = body.slice(s.size - start);
    const isFinal = total !== null && start + body.length === total;
    if (!isFinal && body.length % (256 * 1024) !== 0) {
      return googleError(res, 400, 'invalid', 'Non-final chunks must be a multiple of 256 KiB.');
    }
    if (fault && fault.type === 'partial' && data.length > 256 * 1024) {
      data = data.slice(0, Math.floor(data.length / 2 / (256 * 1024)) * 256 * 1024 || 256 * 1024);
      s.chunks.push(data); s.size += data.length;
      return sendResumeIncomplete(res, s);
    }
    s.chunks.push(data);
    s.size += data.length;
  }
  if (total !== null && s.size === total) {
    const all = Buffer.concat(s.chunks);
    const mismatch = hashMismatch(all, s.meta, req.headers['x-goog-hash']);
    sessions.delete(id);
    if (mismatch) return googleError(res, 400, 'invalid', mismatch);
    const bucketNow = buckets.get(s.bucketName);
    return sendJson(res, 200, objectResource(host, s.bucketName, storeObject(bucketNow, s.name, all, s.meta, s.kms)));
  }
  if (total !== null && s.size > total) return googleError(res, 400, 'invalid', 'More bytes than the declared total.');
  return sendResumeIncomplete(res, s);
}

function sendResumeIncomplete(res, s) {
  const h = {'Content-Length': 0};
  if (s.size > 0) h.Range = `bytes=0-${s.size - 1}`;
  res.writeHead(308, h);
  res.end();
}

function handleList(req, res, url, bucketName, bucket) {
  const prefix = url.searchParams.get('prefix') || '';
  const delimiter = url.searchParams.get('delimiter') || '';
  const startOffset = url.searchParams.get('startOffset') || '';
  const endOffset = url.searchParams.get('endOffset') || '';
  const maxResults = Math.min(parseInt(url.searchParams.get('maxResults') || '1000', 10) || 1000, 1000);
  const after = url.searchParams.get('pageToken') ? Buffer.from(url.searchParams.get('pageToken'), 'base64').toString() : null;
  const names = [...bucket.objects.keys()].sort();
  const items = [], prefixes = [];
  let next = null, last = null;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    if (startOffset && name < startOffset) continue;
    if (endOffset && name >= endOffset) continue;
    let entry = name, isPrefix = false;
    if (delimiter) {
      const i = name.indexOf(delimiter, prefix.length);
      if (i >= 0) { entry = name.slice(0, i + delimiter.length); isPrefix = true; }
    }
    if (after !== null && entry <= after) continue;
    if (isPrefix && prefixes.includes(entry)) continue;
    if (items.length + prefixes.length >= maxResults) { next = Buffer.from(last).toString('base64'); break; }
    last = entry;
    if (isPrefix) prefixes.push(entry); else items.push(objectResource(req.headers.host, bucketName, bucket.objects.get(name)));
  }
  const out = {kind: 'storage#objects'};
  if (items.length) out.items = items;
  if (prefixes.length) out.prefixes = prefixes;
  if (next) out.nextPageToken = next;
  sendJson(res, 200, out);
}

function handleGetObject(req, res, url, bucketName, bucket, name, principal, media) {
  if (!permissionsOf(bucket, principal).has('storage.objects.get')) return denied(res, principal, 'storage.objects.get', 'object');
  const o = bucket.objects.get(name);
  if (!o) return googleError(res, 404, 'notFound', `No such object: ${bucketName}/${name}`);
  if (!media) return sendJson(res, 200, objectResource(req.headers.host, bucketName, o));
  let data = o.data;
  const headers = {'Content-Type': o.contentType, 'X-Goog-Hash': `crc32c=${o.crc32c},md5=${o.md5}`,
                   'X-Goog-Generation': String(o.generation), 'X-Goog-Stored-Content-Length': String(o.data.length),
                   'ETag': o.etag, 'Accept-Ranges': 'bytes'};
  if (o.contentEncoding) {
    headers['X-Goog-Stored-Content-Encoding'] = o.contentEncoding;
    if (o.contentEncoding === 'gzip' && !/gzip/.test(req.headers['accept-encoding'] || '')) {
      data = zlib.gunzipSync(data);  // decompressive transcoding, as GCS does
      headers['Warning'] = '214 UploadServer gunzipped';
      delete headers['X-Goog-Hash'];
    } else {
      headers['Content-Encoding'] = o.contentEncoding;
    }
  }
  let status = 200;
  if (req.headers.range) {
    const r = parseRangeHeader(req.headers.range, data.length);
    if (r && r.unsatisfiable) return googleError(res, 416, 'requestedRangeNotSatisfiable', 'Request range not satisfiable');
    if (r) {
      headers['Content-Range'] = `bytes ${r.start}-${r.end}/${data.length}`;
      data = data.slice(r.start, r.end + 1);
      status = 206;
    }
  }
  headers['Content-Length'] = data.length;
  res.writeHead(status, headers);
  res.end(data);
}

function handleAdmin(req, res, url, body) {
  const p = url.pathname;
  if (p === '/_admin/health') return sendJson(res, 200, {ok: true});
  if (p === '/_admin/faults') { faults = JSON.parse(body.toString() || '[]').map((f) => Object.assign({count: 1}, f)); return sendJson(res, 200, {ok: true}); }
  if (p === '/_admin/bindings') {
    const b = JSON.parse(body.toString());
    if (!buckets.has(b.bucket)) buckets.set(b.bucket, {bindings: {}, objects: new Map()});
    buckets.get(b.bucket).bindings = b.bindings || {};
    return sendJson(res, 200, {ok: true});
  }
  if (p === '/_admin/expire-tokens') { tokens.clear(); return sendJson(res, 200, {ok: true}); }
  if (p === '/_admin/log') return sendJson(res, 200, requestLog);
  if (p === '/_admin/object') {
    const b = buckets.get(url.searchParams.get('bucket'));
    const o = b && b.objects.get(url.searchParams.get('name'));
    if (!o) return googleError(res, 404, 'notFound', 'no such object');
    res.writeHead(200, {'Content-Length': o.data.length});
    return res.end(o.data);
  }
  googleError(res, 404, 'notFound', 'unknown admin path');
}

function route(req, res, body) {
  const url = new URL(req.url, `http://${req.headers.host || '127.0.0.1'}`);
  if (url.pathname.startsWith('/_admin/')) return handleAdmin(req, res, url, body);
  const line = `${req.method} ${req.url} ${req.headers['content-range'] || ''}`;
  requestLog.push({method: req.method, url: req.url, auth: req.headers.authorization ? 'bearer' : 'none',
                   content_range: req.headers['content-range'] || ''});
  const fault = takeFault(line);
  if (fault) {
    if (fault.type === 'reset') { req.socket.destroy(); return; }
    if (fault.type === '503') return googleError(res, 503, 'backendError', 'Backend Error');
    if (fault.type === '429') return googleError(res, 429, 'rateLimitExceeded', 'The rate of change requests to the object is too high.');
    if (fault.type === 'rateLimit') return googleError(res, 403, 'rateLimitExceeded', 'Rate Limit Exceeded');
    if (fault.type === 'expire_tokens') tokens.clear();
  }
  if (req.method === 'POST' && url.pathname === '/token') return handleToken(req, res, body);
  if (url.pathname.startsWith('/computeMetadata/v1/instance/service-accounts/default/')) {
    return handleMetadata(req, res, url.pathname.slice('/computeMetadata/v1/instance/service-accounts/default/'.length));
  }

  let path = url.pathname;
  let upload = false, download = false;
  if (path.startsWith('/upload/storage/v1/')) { upload = true; path = path.slice('/upload/storage/v1'.length); }
  else if (path.startsWith('/download/storage/v1/')) { download = true; path = path.slice('/download/storage/v1'.length); }
  else if (path.startsWith('/storage/v1/')) path = path.slice('/storage/v1'.length);
  const m = /^\/b\/([^/]+)(\/.*)?$/.exec(path);
  if (!m) return googleError(res, 404, 'notFound', 'Not Found');
  const bucketName = decodeURIComponent(m[1]);
  const rest = m[2] || '';
  const principal = principalOf(req, res);
  if (principal === null) return;
  const bucket = buckets.get(bucketName);
  if (!bucket) return googleError(res, 404, 'notFound', 'The specified bucket does not exist.');
  if (upload && rest === '/o') return handleUpload(req, res, url, bucketName, bucket, body, principal, fault);
  if (rest === '' && req.method === 'GET') {
    return sendJson(res, 200, {kind: 'storage#bucket', id: bucketName, name: bucketName, location: 'US', storageClass: 'STANDARD'});
  }
  if (rest === '/iam/testPermissions' && req.method === 'GET') {
    const perms = permissionsOf(bucket, principal);
    const granted = url.searchParams.getAll('permissions').filter((p) => perms.has(p));
    return sendJson(res, 200, granted.length ? {kind: 'storage#testIamPermissionsResponse', permissions: granted}
                                             : {kind: 'storage#testIamPermissionsResponse'});
  }
  if (rest === '/o' && req.method === 'GET') {
    if (!permissionsOf(bucket, principal).has('storage.objects.list')) return denied(res, principal, 'storage.objects.list', 'bucket');
    return handleList(req, res, url, bucketName, bucket);
  }
  const om = /^\/o\/(.+)$/.exec(rest);
  if (om) {
    const name = decodeURIComponent(om[1]);
    if (req.method === 'GET') {
      return handleGetObject(req, res, url, bucketName, bucket, name, principal, download || url.searchParams.get('alt') === 'media');
    }
    if (req.method === 'DELETE') {
      if (!permissionsOf(bucket, principal).has('storage.objects.delete')) return denied(res, principal, 'storage.objects.delete', 'object');
      if (!bucket.objects.delete(name)) return googleError(res, 404, 'notFound', `No such object: ${bucketName}/${name}`);
      res.writeHead(204);
      return res.end();
    }
  }
  googleError(res, 404, 'notFound', 'Not Found');
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try { route(req, res, Buffer.concat(chunks)); } catch (e) {
      googleError(res, 500, 'backendError', 'test server bug: ' + e.message);
    }
  });
});
server.keepAliveTimeout = 30000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`gcs_server listening on 127.0.0.1:${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
