// Sends events to a Sluice server through Mixpanel's official Node SDK (npm `mixpanel`), the way its users call
// it: import() (one event, a GET with ?data=) and import_batch() (a form POST of data=), both without $insert_id.
// Every call is made twice, as a client that retries would; the server must answer each with success and keep
// every event once (the caller checks the store).
//
// Usage: node legacy_import.js <host> <port> <api_secret> <event_time_seconds>
// Prints one JSON line {"ok":true} or {"ok":false,"errors":[...]} on stdout; exit code 0 either way unless the
// SDK itself throws.
"use strict";

const Mixpanel = require("mixpanel");

const [host, port, secret, timeArg] = process.argv.slice(2);
if (!host || !port || !secret || !timeArg) {
  console.error("usage: node legacy_import.js <host> <port> <api_secret> <event_time_seconds>");
  process.exit(2);
}
const time = Number(timeArg);
const LABEL = 'a > b ~ c 日本語 ✓';

// `key` is the legacy api_key query parameter (Sluice's API secret); the SDK refuses `secret` over plain http.
// verbose: the SDK asks for {"status":1,"error":null} and turns any other status into an Error.
const mixpanel = Mixpanel.init("sdk-token", {
  host,
  port: Number(port),
  protocol: "http",
  key: secret,
  verbose: true,
  logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
});

function importOne() {
  return new Promise((resolve) => {
    mixpanel.import("SDK Single", time, { distinct_id: "sdk-user-1", plan: "pro", price: 19.9 }, (err) =>
      resolve(err ? [String(err.message || err)] : []),
    );
  });
}

function importBatch() {
  const events = [
    {event: 'SDK Batch', properties: {time, distinct_id: 'sdk-user-2', n: 1, label: LABEL}},
    {event: 'SDK Batch', properties: {time, distinct_id: 'sdk-user-2', n: 2, label: LABEL}},
    {event: 'SDK Batch', properties: {time, distinct_id: 'sdk-user-3', n: 1, label: LABEL}},
  ];
  // The SDK posts data=<base64> without percent-encoding it: this text's base64 holds '+', which form
  // decoding turns into a space (the server must read it as '+' again).
  if (!Buffer.from(JSON.stringify(events)).toString('base64').includes('+'))
    throw new Error('no \'+\' in base64');
  return new Promise((resolve) => {
    mixpanel.import_batch(events, (errors) =>
      resolve(errors ? [].concat(errors).map((e) => String((e && e.message) || e)) : []),
    );
  });
}

(async () => {
  const errors = [];
  for (let attempt = 0; attempt < 2; ++attempt) {
    errors.push(...(await importOne()));
    errors.push(...(await importBatch()));
  }
  console.log(JSON.stringify(errors.length ? { ok: false, errors } : { ok: true }));
})();
