// Sluice web console (docs/console.md). Plain JavaScript, no framework, no external resources: every request
// goes to this origin's public APIs — the same ones the CLI uses — with the signed-in credentials as an
// Authorization header. The credentials live in this tab's sessionStorage only; they never appear in a URL
// and are never written into the page.
'use strict';

(() => {
  const AUTH_KEY = 'sluice.console.auth';
  const PIPELINE_API = '/api/2.0/nessie/pipeline/';
  const METRICS_INTERVAL_MS = 2000;
  const METRICS_HISTORY = 90;      // samples kept for the charts (3 minutes at 2 s)
  const PAGE_REFRESH_MS = 3000;    // project and pipeline pages poll this often
  const CALENDAR_MAX_DAYS = 63;    // nine weeks of days in a pipeline's calendar

  const main = document.getElementById('main');
  const state = {
    auth: null,          // {kind: 'admin'|'secret'}; the value is read from sessionStorage when sending
    viewer: null,        // answer of /ui/api/projects
    samples: [],         // [{t, metrics}] of /metrics, newest last
    metricsError: '',
    metricsTimer: 0,
    pageTimer: 0,
    renderSeq: 0,
  };

  // ---- credentials ------------------------------------------------------------------------------------------

  function loadAuth() {
    try {
      const v = JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
      return v && (v.kind === 'admin' || v.kind === 'secret') && typeof v.value === 'string' ? v : null;
    } catch (e) {
      return null;
    }
  }

  function utf8Base64(text) {
    const bytes = new TextEncoder().encode(text);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function authHeader() {
    const a = loadAuth();
    if (!a) return null;
    // The APIs accept the admin token as Bearer and a project's API secret as the Basic user name.
    return a.kind === 'admin' ? 'Bearer ' + a.value : 'Basic ' + utf8Base64(a.value + ':');
  }

  function signOut() {
    sessionStorage.removeItem(AUTH_KEY);
    state.auth = null;
    state.viewer = null;
    state.samples = [];
    stopTimers();
    location.hash = '#/signin';
    render();
  }

  // ---- HTTP -------------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  /// fetch() against this origin with the credentials. `form` is sent as application/x-www-form-urlencoded
  /// (what the pipeline API and the CLI send). Answers the parsed JSON, or throws ApiError with the API's
  /// own error message.
  async function api(method, path, {query, form, text} = {}) {
    const headers = {};
    const auth = authHeader();
    if (auth) headers.Authorization = auth;
    let url = path;
    if (query) url += '?' + toParams(query).toString();
    let body;
    if (form) {
      body = toParams(form).toString();
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    }
    let res;
    try {
      res = await fetch(url, {method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error'});
    } catch (e) {
      throw new ApiError(0, 'The server did not answer (' + e.message + '). Is Sluice running?');
    }
    const raw = await res.text();
    if (text && res.ok) return raw;
    let json = null;
    try {
      json = raw ? JSON.parse(raw) : null;
    } catch (e) {
      json = null;
    }
    if (!res.ok) {
      const msg = json && typeof json.error === 'string' ? json.error : raw.slice(0, 500) || res.statusText;
      throw new ApiError(res.status, msg, json);
    }
    return json;
  }

  function toParams(obj) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined || v === null) continue;
      if (Array.isArray(v)) v.forEach((x) => p.append(k, String(x)));
      else p.append(k, String(v));
    }
    return p;
  }

  function pipelineCall(projectId, action, params, method = 'POST') {
    const all = Object.assign({project_id: projectId}, params || {});
    return method === 'GET' ? api('GET', PIPELINE_API + action, {query: all})
                            : api('POST', PIPELINE_API + action, {form: all});
  }

  // ---- DOM helpers ------------------------------------------------------------------------------------------

  /// h('tag.class', {attr: v, onclick: fn}, children…): text children become text nodes (never HTML), so no
  /// server value can inject markup.
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split('.');
    const el = document.createElement(tag);
    if (classes.length) el.className = classes.join(' ');
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = (el.className ? el.className + ' ' : '') + v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /// Replaces `el`'s children (flattened; null, undefined and false skipped — replaceChildren would print them).
  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }

  function announce(text) {
    const el = document.getElementById('announce');
    el.textContent = '';
    setTimeout(() => { el.textContent = text; }, 30);
  }

  function setPage(title, ...children) {
    document.title = title + ' · Sluice console';
    main.replaceChildren(...children.flat().filter(Boolean));
  }

  // ---- formatting -------------------------------------------------------------------------------------------

  const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
  const pad = (n) => String(n).padStart(2, '0');

  function toDate(v) {
    if (v === null || v === undefined || v === '' || v === 0) return null;
    let text = String(v).replace(' ', 'T');
    // The APIs speak UTC; a timestamp without a zone must not be read as the viewer's local time.
    if (/^\d{4}-\d\d-\d\dT[\d:.]+$/.test(text)) text += 'Z';
    const d = typeof v === 'number' ? new Date(v) : new Date(text);
    return isNaN(d.getTime()) ? null : d;
  }

  function utcText(d) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
           `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  function localText(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
           `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${viewerZone}`;
  }

  /// A time in UTC with the viewer's zone beside it (both, always: operators and users rarely share a zone).
  function timeEl(v) {
    const d = toDate(v);
    if (!d) return h('span.muted', {}, '—');
    return h('time.time', {datetime: d.toISOString()}, utcText(d), ' ', h('span.local', {}, '(' + localText(d) + ')'));
  }

  function num(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : (n ?? '—');
  }

  function bytes(n) {
    if (typeof n !== 'number') return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
  }

  function rateText(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return '—';
    return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ' + unit;
  }

  // ---- /metrics ---------------------------------------------------------------------------------------------

  /// Prometheus text format → [{name, labels, value}].
  function parseMetrics(text) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[3]) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
        let l;
        while ((l = re.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
      out.push({name: m[1], labels, value: Number(m[4])});
    }
    return out;
  }

  function sum(metrics, name, filter) {
    let total = 0;
    let found = false;
    for (const m of metrics) {
      if (m.name !== name || (filter && !filter(m.labels))) continue;
      total += m.value;
      found = true;
    }
    return found ? total : null;
  }

  function maxOf(metrics, name) {
    let best = null;
    for (const m of metrics) if (m.name === name && (best === null || m.value > best)) best = m.value;
    return best;
  }

  function byLabel(metrics, name, label) {
    const out = new Map();
    for (const m of metrics) {
      if (m.name !== name) continue;
      const k = m.labels[label] || '(none)';
      out.set(k, (out.get(k) || 0) + m.value);
    }
    return out;
  }

  /// The per-second rate of a counter between the last two samples.
  function rate(name, filter, back = 1) {
    const n = state.samples.length;
    if (n < 2) return null;
    const a = state.samples[Math.max(0, n - 1 - back)];
    const b = state.samples[n - 1];
    const va = sum(a.metrics, name, filter);
    const vb = sum(b.metrics, name, filter);
    if (va === null || vb === null || b.t <= a.t) return va === null && vb !== null ? 0 : null;
    return Math.max(0, (vb - va) / ((b.t - a.t) / 1000));
  }

  /// A series of one value per sample for the charts: counters as rates, gauges as they are.
  function series(name, kind) {
    const out = [];
    for (let i = 0; i < state.samples.length; i++) {
      const cur = state.samples[i];
      if (kind === 'gauge') {
        out.push({t: cur.t, v: maxOf(cur.metrics, name)});
      } else if (i > 0) {
        const prev = state.samples[i - 1];
        const a = sum(prev.metrics, name);
        const b = sum(cur.metrics, name);
        out.push({t: cur.t, v: a === null || b === null ? (b === null ? null : 0) : Math.max(0, (b - a) / ((cur.t - prev.t) / 1000))});
      }
    }
    return out;
  }

  async function sampleMetrics() {
    try {
      const text = await api('GET', '/metrics', {text: true});
      state.samples.push({t: Date.now(), metrics: parseMetrics(text)});
      if (state.samples.length > METRICS_HISTORY) state.samples.shift();
      state.metricsError = '';
    } catch (e) {
      state.metricsError = e.status === 401 || e.status === 403
          ? '/metrics is not readable with these credentials (sign in with the admin token to see it).'
          : '/metrics: ' + e.message;
    }
    for (const fn of metricsListeners) fn();
  }

  const metricsListeners = new Set();

  function startMetrics() {
    if (state.metricsTimer) return;
    sampleMetrics();
    state.metricsTimer = setInterval(sampleMetrics, METRICS_INTERVAL_MS);
  }

  function stopTimers() {
    clearInterval(state.metricsTimer);
    state.metricsTimer = 0;
    clearTimeout(state.pageTimer);
    state.pageTimer = 0;
    metricsListeners.clear();
  }

  // ---- charts (inline SVG, drawn here) ----------------------------------------------------------------------

  function sparkline(values, label) {
    const w = 120, hgt = 24;
    const max = Math.max(1, ...values);
    const pts = values.map((v, i) => `${(i * w / Math.max(1, values.length - 1)).toFixed(1)},${(hgt - 2 - v / max * (hgt - 4)).toFixed(1)}`);
    return s('svg', {class: 'spark', viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: 'img', 'aria-label': label},
             s('title', {}, label),
             s('polyline', {points: pts.join(' '), fill: 'none', stroke: '#0b5cad', 'stroke-width': 1.5}));
  }

  function lineChart(title, points, unit, format) {
    const w = 360, hgt = 120, left = 48, bottom = 18;
    const vals = points.map((p) => p.v).filter((v) => v !== null && isFinite(v));
    const max = vals.length ? Math.max(...vals) : 0;
    const top = max > 0 ? max * 1.15 : 1;
    const last = vals.length ? vals[vals.length - 1] : null;
    const t0 = points.length ? points[0].t : 0;
    const t1 = points.length ? points[points.length - 1].t : 1;
    const x = (t) => left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (w - left - 6);
    const y = (v) => 6 + (1 - v / top) * (hgt - bottom - 6);
    const svg = s('svg', {viewBox: `0 0 ${w} ${hgt}`, role: 'img',
                          'aria-label': `${title}: latest ${format(last)}, peak ${format(max)} over the last ${points.length} samples`});
    svg.appendChild(s('title', {}, title));
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac;
      svg.appendChild(s('line', {x1: left, x2: w - 6, y1: y(v), y2: y(v), stroke: '#c9d1d9', 'stroke-width': 1}));
      svg.appendChild(s('text', {x: left - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#4a5360'}, format(v).replace(' ' + unit, '')));
    }
    const pts = points.filter((p) => p.v !== null && isFinite(p.v)).map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
    if (pts.length > 1) svg.appendChild(s('polyline', {points: pts.join(' '), fill: 'none', stroke: '#0b5cad', 'stroke-width': 2}));
    else if (pts.length === 1) {
      const [px, py] = pts[0].split(',');
      svg.appendChild(s('circle', {cx: px, cy: py, r: 3, fill: '#0b5cad'}));
    }
    svg.appendChild(s('text', {x: left, y: hgt - 4, 'font-size': 10, fill: '#4a5360'}, points.length ? 'last ' + Math.round((t1 - t0) / 1000) + ' s' : 'waiting for samples'));
    return h('figure.chart.panel', {}, h('figcaption', {}, h('h3', {}, title), h('span.value', {}, format(last))), svg);
  }

  // ---- pipeline day states ----------------------------------------------------------------------------------

  const STATE_SYMBOL = {delivered: '✓', pending: '…', late: '↻', failed: '✗', running: '▶'};
  const STATE_TEXT = {
    delivered: 'delivered',
    pending: 'pending',
    late: 'late data waiting',
    failed: 'failed',
    running: 'running',
  };

  /// A day's cell state from its day_syncs entry: delivered, pending, late data waiting (delivered before,
  /// re-delivery pending), failed, running.
  function dayState(d) {
    if (!d) return 'pending';
    const delivered = Array.isArray(d.sync_times) && d.sync_times.length > 0;
    switch (d.status) {
      case 'succeeded': return 'delivered';
      case 'failed': case 'timed_out': return 'failed';
      case 'canceled': return delivered ? 'delivered' : 'pending';
      case 'running': case 'retried': return delivered ? 'late' : 'running';
      default: return delivered ? 'late' : 'pending';
    }
  }

  function isoDay(d) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  }

  function calendar(job, daySyncs, projectId, selected) {
    const byDate = new Map((daySyncs || []).map((d) => [d.date, d]));
    const today = isoDay(new Date());
    const from = job.from_date || (daySyncs && daySyncs[0] && daySyncs[0].date) || today;
    const last = job.to_date && job.to_date < today ? job.to_date : today;
    const days = [];
    for (let t = Date.parse(from + 'T00:00:00Z'); t <= Date.parse(last + 'T00:00:00Z'); t += 86400000) days.push(isoDay(new Date(t)));
    const shown = days.slice(-CALENDAR_MAX_DAYS);
    const grid = h('div.calendar', {role: 'list', 'aria-label': `Days of pipeline ${job.name}, coloured by state`});
    for (const dow of ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']) grid.appendChild(h('span.dow', {'aria-hidden': 'true'}, dow));
    if (shown.length) {
      const lead = (new Date(shown[0] + 'T00:00:00Z').getUTCDay() + 6) % 7;
      for (let i = 0; i < lead; i++) grid.appendChild(h('span.cell.none', {'aria-hidden': 'true'}));
    }
    for (const day of shown) {
      const st = dayState(byDate.get(day));
      const label = `${day}: ${STATE_TEXT[st]}`;
      const href = `#/project/${projectId}/pipeline/${encodeURIComponent(job.name)}/day/${day}`;
      // The list item wraps the link, so assistive technology still announces a link.
      grid.appendChild(h('span', {role: 'listitem'},
                         h('a', {href, class: st, title: label, 'aria-label': label, 'data-day': day, 'data-state': st,
                                 'aria-current': selected === day ? 'date' : null},
                           h('span.sym', {'aria-hidden': 'true'}, STATE_SYMBOL[st]), day.slice(8))));
    }
    const legend = h('ul.legend', {'aria-label': 'Legend'},
                     Object.keys(STATE_TEXT).map((k) => h('li', {}, h('span.sw.' + k, {'aria-hidden': 'true'}), STATE_SYMBOL[k] + ' ' + STATE_TEXT[k])));
    const range = shown.length < days.length ? h('p.muted', {}, `Showing the last ${shown.length} of ${days.length} days (UTC).`)
                                             : h('p.muted', {}, 'Days are UTC.');
    return h('div', {}, legend, grid, range);
  }

  /// What to do about a failure, in addition to Sluice's own message (which already names the missing
  /// permission or setting).
  function fixHint(message) {
    const m = message || '';
    if (/PutObject|AccessDenied|access denied|was denied/i.test(m)) {
      return 'Grant the missing permission to the role (the message names the action and the statement to add), then press Resume.';
    }
    if (/ExternalId|AssumeRole|trust policy/i.test(m)) {
      return 'Fix the role\'s trust policy (principal and sts:ExternalId), then press Resume.';
    }
    if (/NoSuchBucket|bucket.*does not exist/i.test(m)) return 'Create the bucket or correct s3_bucket with Edit, then Resume.';
    if (/local|directory|permission/i.test(m)) return 'Check the directory on the Sluice server, then Resume.';
    return 'Fix what the message says, then press Resume; the failed days are exported again.';
  }

  // ---- destination check report ------------------------------------------------------------------------------

  /// Splits the destination check's text report (objstore/destination_check.cc ToText) into its steps, so
  /// the form shows it step by step. Unknown shapes fall back to the message as it is.
  function parseCheckReport(message) {
    const steps = [];
    let summary = '';
    for (const line of String(message).split('\n')) {
      const m = /^\s*\[(ok  |ok|FAIL|skip)\]\s+(\S+)\s+(.*)$/.exec(line);
      if (m) {
        steps.push({tag: m[1].trim(), name: m[2], message: m[3], statement: ''});
        continue;
      }
      const st = /^\s+statement:\s*(.*)$/.exec(line);
      if (st && steps.length) {
        steps[steps.length - 1].statement = st[1];
        continue;
      }
      if (/^Result:/.test(line.trim())) summary = line.trim();
    }
    return {steps, summary};
  }

  function errorReport(err) {
    const report = parseCheckReport(err.message);
    if (!report.steps.length) return h('div.alert', {role: 'alert'}, err.message);
    const head = err.message.split('\n')[0];
    return h('div.panel', {role: 'alert', id: 'check-report'},
             h('h3', {}, 'Destination check'),
             h('p', {}, head),
             h('ol.steps', {}, report.steps.map((st) => {
               const cls = st.tag === 'ok' ? 'ok' : st.tag === 'FAIL' ? 'fail' : 'skip';
               const tag = cls === 'ok' ? '✓ ok' : cls === 'fail' ? '✗ FAIL' : '– skip';
               return h('li.' + cls, {'data-step': st.name, 'data-result': cls},
                        h('span.tag', {}, tag), ' ', h('strong', {}, st.name), ' — ', st.message,
                        st.statement ? h('div', {}, 'Add to the role\'s policy:', h('pre', {}, st.statement)) : null);
             })),
             report.summary ? h('p.error', {}, report.summary) : null);
  }

  // ---- pages ------------------------------------------------------------------------------------------------

  function renderSignIn(message) {
    const secret = h('input', {type: 'password', id: 'credential', name: 'credential', autocomplete: 'off', required: true, spellcheck: 'false'});
    const kindAdmin = h('input', {type: 'radio', name: 'kind', value: 'admin', id: 'kind-admin', checked: true});
    const kindSecret = h('input', {type: 'radio', name: 'kind', value: 'secret', id: 'kind-secret'});
    const status = h('p', {id: 'signin-status', role: 'alert', class: message ? 'error' : ''}, message || '');
    const form = h('form.stack.panel', {id: 'signin', 'aria-describedby': 'signin-help', onsubmit: async (ev) => {
      ev.preventDefault();
      const kind = kindSecret.checked ? 'secret' : 'admin';
      const value = secret.value.trim();
      if (!value) { status.textContent = 'Enter the admin token or a project API secret.'; return; }
      sessionStorage.setItem(AUTH_KEY, JSON.stringify({kind, value}));
      secret.value = '';
      try {
        state.viewer = await api('GET', '/ui/api/projects');
        state.auth = {kind};
        announce('Signed in');
        location.hash = state.viewer.viewer === 'admin' || state.viewer.projects.length !== 1
            ? '#/projects' : '#/project/' + state.viewer.projects[0].id;
        render();
      } catch (e) {
        sessionStorage.removeItem(AUTH_KEY);
        status.className = 'error';
        status.textContent = e.status === 401
            ? 'Sign-in failed: the server did not accept these credentials. Check that you chose the right kind (admin token or project API secret) and copied the whole value.'
            : 'Sign-in failed: ' + e.message;
        secret.focus();
      }
    }},
    h('fieldset', {}, h('legend', {}, 'Sign in with'),
      h('label.choice', {for: 'kind-admin'}, kindAdmin, 'Admin token (operators: every project)'),
      h('label.choice', {for: 'kind-secret'}, kindSecret, 'Project API secret (one project)')),
    h('label', {for: 'credential'}, 'Token or secret'), secret,
    h('p.hint', {id: 'signin-help'}, 'Kept in this browser tab only (session storage) and sent as an Authorization header; it is never put in a URL or shown again.'),
    h('div.actions', {}, h('button', {type: 'submit'}, 'Sign in')), status);
    setPage('Sign in', h('h1', {}, 'Sign in to Sluice'), form);
    secret.focus();
  }

  async function renderProjects(seq) {
    const viewer = await api('GET', '/ui/api/projects');
    if (seq !== state.renderSeq) return;
    state.viewer = viewer;
    const rows = viewer.projects.map((p) => h('tr', {'data-project': p.id},
      h('td', {}, h('a', {href: '#/project/' + p.id}, p.name), h('span.muted', {}, ' #' + p.id)),
      h('td.num', {'data-field': 'events_today'}, num(p.events_today)),
      h('td.num', {}, num(p.events_last_hour)),
      h('td', {}, sparkline(p.events_last_24h || [], `Events per hour over the last 24 hours for ${p.name}`)),
      h('td.num', {}, bytes(p.bytes_today)),
      h('td', {}, timeEl(p.created_ms))));
    const table = viewer.projects.length
        ? h('table', {id: 'projects'},
            h('caption.sr-only', {}, 'Projects'),
            h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Project'), h('th.num', {scope: 'col'}, `Events today (${viewer.day} UTC)`),
                                       h('th.num', {scope: 'col'}, 'Last hour'), h('th', {scope: 'col'}, 'Last 24 h'),
                                       h('th.num', {scope: 'col'}, 'Stored today'), h('th', {scope: 'col'}, 'Created'))),
            h('tbody', {}, rows))
        : h('p', {}, 'No projects yet. Create one with ', h('code', {}, 'sluice project create NAME'), '.');
    const health = h('section.panel', {id: 'ingest-health', 'aria-labelledby': 'health-h'});
    const drawHealth = () => {
      const accepted = rate('sluice_events_accepted_total');
      const last = state.samples.length ? state.samples[state.samples.length - 1].metrics : [];
      const rejected = byLabel(last, 'sluice_events_rejected_total', 'reason');
      fill(health,
        h('h2', {id: 'health-h'}, 'Ingestion (whole server)'),
        state.metricsError ? h('p.muted', {}, state.metricsError) : null,
        h('dl.kv', {},
          h('dt', {}, 'Ingest rate'), h('dd', {id: 'ingest-rate'}, rateText(accepted, 'events/s')),
          h('dt', {}, 'Events accepted'), h('dd', {}, num(sum(last, 'sluice_events_accepted_total') ?? 0)),
          h('dt', {}, 'Events rejected'), h('dd', {}, num(sum(last, 'sluice_events_rejected_total') ?? 0))),
        h('h3', {}, 'Rejected by reason'),
        rejected.size
            ? h('table', {id: 'rejected'}, h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Reason'), h('th.num', {scope: 'col'}, 'Events'))),
                h('tbody', {}, [...rejected.entries()].sort((a, b) => b[1] - a[1]).map(([r, n]) => h('tr', {}, h('td', {}, r), h('td.num', {}, num(n))))))
            : h('p.muted', {id: 'rejected'}, 'No events rejected since the server started.'));
    };
    drawHealth();
    metricsListeners.add(drawHealth);
    setPage('Projects', h('h1', {}, 'Projects'), table, health);
  }

  async function loadProjectName(id) {
    if (!state.viewer) state.viewer = await api('GET', '/ui/api/projects');
    const p = state.viewer.projects.find((x) => String(x.id) === String(id));
    return p ? p.name : 'Project ' + id;
  }

  function destinationText(d) {
    if (!d) return '';
    if (d.type === 'local') return 'local directory ' + d.local_path;
    return `s3://${d.s3_bucket}/${d.s3_prefix || ''} (${d.s3_region})${d.s3_endpoint ? ' at ' + d.s3_endpoint : ''} via ${d.s3_role}`;
  }

  function actionButtons(projectId, job, after) {
    const out = h('div.actions', {role: 'group', 'aria-label': `Actions for ${job.name}`});
    const run = (action, label) => h('button' + (action === 'cancel' ? '.danger' : '.secondary'), {type: 'button', 'data-action': action, onclick: async (ev) => {
      if (action === 'cancel' && !confirm(`Cancel pipeline ${job.name} for good? Exported data stays in the destination.`)) return;
      ev.target.disabled = true;
      try {
        await pipelineCall(projectId, action, {name: job.name});
        announce(`${label}: done for ${job.name}`);
        flash(out, `${label}: done.`, false);
      } catch (e) {
        flash(out, `${label} failed: ${e.message}`, true);
      }
      ev.target.disabled = false;
      after();
    }}, label);
    if (job.status === 'active') out.append(run('pause', 'Pause'), run('sync', 'Sync now'));
    if (job.status === 'paused') out.append(run('resume', 'Resume'));
    if (job.status === 'active' || job.status === 'paused') {
      out.append(h('a.button.secondary', {href: `#/project/${projectId}/pipeline/${encodeURIComponent(job.name)}/edit`}, 'Edit'),
                 run('cancel', 'Cancel'));
    }
    return out;
  }

  function flash(container, text, isError) {
    const p = h('p', {role: isError ? 'alert' : 'status', class: isError ? 'error' : 'muted', 'data-flash': '1'}, text);
    container.parentNode && container.parentNode.insertBefore(p, container.nextSibling);
    setTimeout(() => p.remove(), 8000);
  }

  function pipelineCard(projectId, job, status, opts) {
    const failure = job.failure_message || (status && status.failure_message) || '';
    return h('article.panel', {'data-pipeline': job.name, 'aria-labelledby': 'p-' + job.name},
      h('h3', {id: 'p-' + job.name}, opts.link ? h('a', {href: `#/project/${projectId}/pipeline/${encodeURIComponent(job.name)}`}, job.name) : job.name, ' ',
        h('span.badge.' + job.status, {'data-field': 'status'}, job.status)),
      h('dl.kv', {},
        h('dt', {}, 'Exports'), h('dd', {}, `${job.data_source}, ${job.frequency}, from ${job.from_date}${job.to_date ? ' to ' + job.to_date : ' (recurring)'}`),
        h('dt', {}, 'Destination'), h('dd', {}, destinationText(job.destination)),
        h('dt', {}, 'Exported'), h('dd', {}, `${num(job.events_exported)} events, ${bytes(job.bytes_exported)}, ${num(job.partitions_exported)} partitions`),
        h('dt', {}, 'Last dispatched'), h('dd', {}, timeEl(job.last_dispatched))),
      failure ? h('div.alert', {role: 'alert', 'data-field': 'failure'}, h('strong', {}, 'Failed: '), failure,
                  h('p', {}, h('strong', {}, 'What to do: '), fixHint(failure))) : null,
      status ? calendar(job, status.day_syncs, projectId, opts.selected) : h('p.muted', {}, 'Loading days…'),
      actionButtons(projectId, job, opts.refresh));
  }

  function normaliseConnectors(answer) {
    const r = answer && answer.results !== undefined ? answer.results : answer;
    const list = Array.isArray(r) ? r : (r && Array.isArray(r.data) ? r.data : []);
    return list.map((c) => Object.assign({}, c, {cid: c.connector_id || c.id}));
  }

  function connectorCard(projectId, c, lastRun, refresh) {
    const run = lastRun || null;
    const cp = c.connector_properties || {};
    const progress = run && typeof run.progress === 'number' ? Math.max(0, Math.min(1, run.progress > 1 ? run.progress / 100 : run.progress)) : 0;
    const errors = run && Array.isArray(run.errors) ? run.errors : [];
    const actions = h('div.actions', {role: 'group', 'aria-label': `Actions for connector ${c.label || c.cid}`});
    const act = (what, label) => h('button.secondary', {type: 'button', 'data-action': what, onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        await api('POST', `/api/app/projects/${projectId}/connectors/${encodeURIComponent(c.cid)}/${what}`);
        announce(`${label}: done`);
      } catch (e) {
        flash(actions, `${label} failed: ${e.message}`, true);
      }
      ev.target.disabled = false;
      refresh();
    }}, label);
    actions.append(act('run', 'Run now'));
    if (c.status === 'paused') actions.append(act('resume', 'Resume'));
    const pid = 'prog-' + c.cid;
    return h('article.panel', {'data-connector': c.cid},
      h('h3', {}, c.label || c.cid, ' ', h('span.badge.' + (c.status === 'paused' ? 'paused' : 'active'), {}, c.status || 'active')),
      h('dl.kv', {},
        h('dt', {}, 'Source'), h('dd', {}, `s3://${cp.s3_bucket || ''}/${cp.s3_prefix || ''} (${cp.s3_region || ''})`),
        h('dt', {}, 'Format'), h('dd', {}, c.category_properties ? `${c.category_properties.data_format}, ${c.category_properties.compression}, every ${c.category_properties.frequency} min` : '—'),
        h('dt', {}, 'Next run'), h('dd', {}, c.status === 'paused' ? 'paused' : timeEl(c.next_run))),
      c.failure_message ? h('div.alert', {role: 'alert'}, h('strong', {}, 'Failed: '), c.failure_message,
                            h('p', {}, h('strong', {}, 'What to do: '), fixHint(c.failure_message))) : null,
      run ? h('div', {'data-field': 'run'},
              h('h4', {}, 'Latest run ', h('span.badge.' + run.status, {'data-field': 'run-status'}, run.status)),
              h('label', {for: pid}, `Progress ${Math.round(progress * 100)} %`), ' ',
              h('progress', {id: pid, max: 1, value: progress, 'data-field': 'progress'}, `${Math.round(progress * 100)} %`),
              h('dl.kv', {},
                h('dt', {}, 'Events'), h('dd', {'data-field': 'events'}, `${num(run.num_events_imported)} imported of ${num(run.num_events_processed)} read, ${num(run.num_events_dropped)} dropped`),
                h('dt', {}, 'Files'), h('dd', {}, `${num(run.num_files_imported)} imported, ${num(run.num_files_failed)} failed, of ${num(run.num_files_found)} found`),
                h('dt', {}, 'Bytes'), h('dd', {}, `${bytes(run.size_imported)} of ${bytes(run.size_total)}`),
                h('dt', {}, 'Started'), h('dd', {}, timeEl(run.started)),
                h('dt', {}, 'Finished'), h('dd', {}, timeEl(run.finished))),
              run.failure_message ? h('div.alert', {role: 'alert'}, run.failure_message) : null,
              errors.length ? h('div', {}, h('h4', {}, 'First bad lines'),
                                h('table', {'data-field': 'bad-lines'}, h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'File'), h('th.num', {scope: 'col'}, 'Line'), h('th', {scope: 'col'}, 'Reason'))),
                                  h('tbody', {}, errors.slice(0, 10).map((e) => h('tr', {}, h('td', {}, e.file), h('td.num', {}, num(e.line)), h('td', {}, e.reason))))),
                                run.errors_omitted ? h('p.muted', {}, `${num(run.errors_omitted)} more not listed.`) : null)
                            : null)
          : h('p.muted', {}, 'No run yet.'),
      actions);
  }

  async function renderProject(seq, projectId) {
    const name = await loadProjectName(projectId);
    const pipelinesSection = h('section', {id: 'pipelines', 'aria-labelledby': 'pl-h'}, h('h2', {id: 'pl-h'}, 'Pipelines'));
    const connectorsSection = h('section', {id: 'connectors', 'aria-labelledby': 'cn-h'}, h('h2', {id: 'cn-h'}, 'Cloud Import connectors'));
    const refresh = async () => {
      clearTimeout(state.pageTimer);
      if (seq !== state.renderSeq) return;
      await Promise.all([
        (async () => {
          let jobs;
          try {
            const answer = await pipelineCall(projectId, 'jobs', {}, 'GET');
            jobs = answer[String(projectId)] || Object.values(answer)[0] || [];
          } catch (e) {
            fill(pipelinesSection, h('h2', {id: 'pl-h'}, 'Pipelines'), h('p.error', {role: 'alert'}, e.message));
            return;
          }
          const statuses = await Promise.all(jobs.map((j) => pipelineCall(projectId, 'status', {name: j.name, summary: true}, 'GET').catch(() => null)));
          if (seq !== state.renderSeq) return;
          const focusKey = document.activeElement && document.activeElement.closest && pipelinesSection.contains(document.activeElement)
              ? focusPath(document.activeElement) : null;
          fill(pipelinesSection, h('h2', {id: 'pl-h'}, 'Pipelines'),
            h('p', {}, h('a.button', {href: `#/project/${projectId}/new-pipeline`}, 'New pipeline')),
            jobs.length ? h('div', {}, jobs.map((j, i) => pipelineCard(projectId, j, statuses[i], {link: true, refresh})))
                        : h('p.muted', {}, 'No pipelines yet.'));
          restoreFocus(pipelinesSection, focusKey);
        })(),
        (async () => {
          let list;
          try {
            list = normaliseConnectors(await api('GET', `/api/app/projects/${projectId}/connectors`));
          } catch (e) {
            fill(connectorsSection, h('h2', {id: 'cn-h'}, 'Cloud Import connectors'), h('p.muted', {}, e.message));
            return;
          }
          const details = await Promise.all(list.map((c) => api('GET', `/api/app/projects/${projectId}/connectors/${encodeURIComponent(c.cid)}`).catch(() => null)));
          if (seq !== state.renderSeq) return;
          const focusKey = connectorsSection.contains(document.activeElement) ? focusPath(document.activeElement) : null;
          fill(connectorsSection, h('h2', {id: 'cn-h'}, 'Cloud Import connectors'),
            ...(list.length ? list.map((c, i) => {
              const d = details[i] && details[i].results ? details[i].results : details[i];
              const full = d && typeof d === 'object' ? Object.assign({}, c, d) : c;
              return connectorCard(projectId, full, d ? d.last_run : null, refresh);
            }) : [h('p.muted', {}, 'No connectors. Create one with the connectors API or ', h('code', {}, 'sluice import create'), '.')]));
          restoreFocus(connectorsSection, focusKey);
        })(),
      ]);
      if (seq === state.renderSeq) state.pageTimer = setTimeout(refresh, PAGE_REFRESH_MS);
    };
    if (seq !== state.renderSeq) return;
    setPage(name, h('p', {}, h('a', {href: '#/projects'}, '← Projects')), h('h1', {}, name, h('span.muted', {}, ' #' + projectId)),
            pipelinesSection, connectorsSection);
    await refresh();
  }

  /// Periodic refreshes replace DOM nodes; keep keyboard focus on the "same" control (by its data attributes).
  function focusPath(el) {
    const owner = el.closest('[data-pipeline],[data-connector]');
    return {owner: owner ? (owner.dataset.pipeline || owner.dataset.connector) : null, action: el.dataset.action || null,
            day: el.dataset.day || null, href: el.getAttribute('href')};
  }

  function restoreFocus(root, key) {
    if (!key) return;
    for (const el of root.querySelectorAll('a,button')) {
      const owner = el.closest('[data-pipeline],[data-connector]');
      const o = owner ? (owner.dataset.pipeline || owner.dataset.connector) : null;
      if (o === key.owner && (el.dataset.action || null) === key.action && (el.dataset.day || null) === key.day &&
          el.getAttribute('href') === key.href) {
        el.focus();
        return;
      }
    }
  }

  async function renderPipeline(seq, projectId, name, day) {
    const projectName = await loadProjectName(projectId);
    const body = h('div', {id: 'pipeline'});
    const detail = h('section', {id: 'day-detail', 'aria-labelledby': 'dd-h', tabindex: '-1'});
    const history = h('section', {id: 'history', 'aria-labelledby': 'hi-h'});
    let first = true;
    const refresh = async () => {
      clearTimeout(state.pageTimer);
      if (seq !== state.renderSeq) return;
      try {
        const [jobs, status, timeline] = await Promise.all([
          pipelineCall(projectId, 'jobs', {}, 'GET'),
          pipelineCall(projectId, 'status', {name, summary: true}, 'GET'),
          pipelineCall(projectId, 'timeline', {name, limit: 1000}, 'GET'),
        ]);
        if (seq !== state.renderSeq) return;
        const job = (jobs[String(projectId)] || []).find((j) => j.name === name);
        if (!job) throw new ApiError(404, `pipeline ${name} does not exist in project ${projectId}`);
        const tasks = Array.isArray(timeline.tasks) ? timeline.tasks : [];
        const focusKey = body.contains(document.activeElement) ? focusPath(document.activeElement) : null;
        fill(body, pipelineCard(projectId, job, status, {link: false, selected: day, refresh}));
        restoreFocus(body, focusKey);
        if (day) {
          const dayTasks = tasks.filter((t) => (t.partition || '').startsWith(day));
          const ds = (status.day_syncs || []).find((d) => d.date === day);
          const st = dayState(ds);
          const failed = dayTasks.find((t) => t.state === 'failed' || t.state === 'timed_out' || (t.state === 'retried' && t.message));
          const msg = (failed && failed.message) || (st === 'failed' ? job.failure_message : '');
          fill(detail,
            h('h2', {id: 'dd-h'}, `${day} (UTC) `, h('span.badge.' + st, {'data-field': 'day-state'}, STATE_TEXT[st])),
            ds && ds.sync_times && ds.sync_times.length ? h('p', {}, 'Delivered at: ', ds.sync_times.map((t, i) => [i ? ', ' : '', timeEl(t)])) : h('p.muted', {}, 'Not delivered yet.'),
            msg ? h('div.alert', {role: 'alert', 'data-field': 'day-failure'}, h('strong', {}, 'Failure: '), msg,
                    h('p', {}, h('strong', {}, 'What to do: '), fixHint(msg))) : null,
            taskTable(dayTasks, `Tasks of ${day}`));
          if (first) detail.focus();
        } else {
          fill(detail);
        }
        fill(history, h('h2', {id: 'hi-h'}, 'Task history (newest first)'), taskTable(tasks.slice(0, 50), 'Task history'));
      } catch (e) {
        fill(body, h('p.error', {role: 'alert'}, e.message));
      }
      first = false;
      if (seq === state.renderSeq) state.pageTimer = setTimeout(refresh, PAGE_REFRESH_MS);
    };
    setPage(name, h('p', {}, h('a', {href: '#/project/' + projectId}, '← ' + projectName)),
            h('h1', {}, 'Pipeline ', name), body, detail, history);
    await refresh();
  }

  function taskTable(tasks, caption) {
    if (!tasks.length) return h('p.muted', {}, 'No tasks.');
    return h('table', {'data-field': 'tasks'}, h('caption.sr-only', {}, caption),
      h('thead', {}, h('tr', {}, ['Partition', 'Kind', 'State', 'Attempts', 'Scheduled', 'Finished', 'Records', 'Bytes', 'Message']
        .map((c) => h('th', {scope: 'col', class: ['Attempts', 'Records', 'Bytes'].includes(c) ? 'num' : null}, c)))),
      h('tbody', {}, tasks.map((t) => h('tr', {},
        h('td', {}, t.partition), h('td', {}, t.kind), h('td', {}, h('span.badge.' + t.state, {}, t.state)),
        h('td.num', {}, num(t.attempts)), h('td', {}, timeEl(t.scheduled_ms)), h('td', {}, timeEl(t.finished_ms)),
        h('td.num', {}, num(t.records)), h('td.num', {}, bytes(t.bytes)), h('td', {}, t.message || '')))));
  }

  // Create and edit: the pipeline API's own parameters (docs/pipelines.md), sent as a form like the CLI.
  // Frequency and the destination's location (bucket, prefix, endpoint, local_path) are fixed once created.
  const EDITABLE = [
    'to_date', 'sync', 'compression', 'events', 'where', 's3_region', 's3_role', 's3_encryption',
    's3_kms_key_id'
  ];
  const FIXED_IN_EDIT = ['frequency', 's3_bucket', 's3_prefix', 's3_endpoint', 'local_path'];

  function field(id, label, input, hint) {
    input.id = id;
    input.name = id;
    if (hint) input.setAttribute('aria-describedby', id + '-hint');
    return [h('label', {for: id}, label), input, hint ? h('div.hint', {id: id + '-hint'}, hint) : null];
  }

  function select(options, value) {
    return h('select', {}, options.map((o) => h('option', {value: o, selected: o === value}, o)));
  }

  async function renderPipelineForm(seq, projectId, editName) {
    const projectName = await loadProjectName(projectId);
    let job = null;
    if (editName) {
      const jobs = await pipelineCall(projectId, 'jobs', {}, 'GET');
      job = (jobs[String(projectId)] || []).find((j) => j.name === editName);
      if (!job) throw new ApiError(404, `pipeline ${editName} does not exist`);
    }
    if (seq !== state.renderSeq) return;
    const d = (job && job.destination) || {};
    const today = isoDay(new Date());
    const inputs = {
      name: h('input', {type: 'text', value: editName || '', disabled: !!job, pattern: '[A-Za-z0-9._\\-]{1,64}'}),
      type: select(['s3', 'local'], job ? d.type : 's3'),
      data_source: select(['events', 'people', 'identity'], job ? job.data_source : 'events'),
      from_date: h('input', {type: 'date', value: job ? job.from_date : today, required: true, disabled: !!job}),
      to_date: h('input', {type: 'date', value: job ? job.to_date : ''}),
      frequency: select(['daily', 'hourly'], job ? job.frequency : 'daily'),
      compression: select(['gzip', 'zstd', 'none'], job ? job.compression : 'gzip'),
      sync: h('input', {type: 'checkbox', checked: job ? !!job.sync_enabled : true}),
      events: h('input', {type: 'text', value: job ? (job.events || []).join(', ') : ''}),
      where: h('input', {type: 'text', value: job ? job.where || '' : ''}),
      s3_bucket: h('input', {type: 'text', value: d.s3_bucket || ''}),
      s3_region: h('input', {type: 'text', value: d.s3_region || ''}),
      s3_role: h('input', {type: 'text', value: d.s3_role || ''}),
      s3_prefix: h('input', {type: 'text', value: d.s3_prefix || ''}),
      s3_endpoint: h('input', {type: 'text', value: d.s3_endpoint || ''}),
      s3_encryption: select(['none', 'aes', 'kms'], d.s3_encryption || 'none'),
      s3_kms_key_id: h('input', {type: 'text', value: d.s3_kms_key_id || ''}),
      local_path: h('input', {type: 'text', value: d.local_path || ''}),
    };
    if (job) {
      inputs.type.disabled = true;
      inputs.data_source.disabled = true;
      for (const k of FIXED_IN_EDIT) inputs[k].disabled = true;
    }
    const s3Set = h('fieldset', {id: 's3-fields'}, h('legend', {}, 'S3 destination'),
      field('s3_bucket', 'Bucket', inputs.s3_bucket, 'Without s3://'),
      field('s3_region', 'Region', inputs.s3_region, 'e.g. eu-west-1'),
      field('s3_role', 'Role ARN', inputs.s3_role, 'arn:aws:iam::<account>:role/<name>; its trust policy must require the project\'s external ID'),
      field('s3_prefix', 'Key prefix', inputs.s3_prefix),
      field('s3_endpoint', 'Endpoint (S3-compatible stores only)', inputs.s3_endpoint),
      field('s3_encryption', 'Server-side encryption', inputs.s3_encryption),
      field('s3_kms_key_id', 'KMS key id (with kms)', inputs.s3_kms_key_id));
    const localSet = h('fieldset', {id: 'local-fields'}, h('legend', {}, 'Local destination'),
      field('local_path', 'Directory on the Sluice server', inputs.local_path, 'Absolute path inside the operator\'s --local-export-root'));
    const showType = () => {
      const local = inputs.type.value === 'local';
      s3Set.hidden = local;
      localSet.hidden = !local;
    };
    inputs.type.addEventListener('change', showType);
    showType();
    const result = h('div', {id: 'form-result', tabindex: '-1'});
    const submit = h('button', {type: 'submit'}, job ? 'Save changes' : 'Create pipeline');
    const form =
        h('form.stack.panel', {
          id: 'pipeline-form',
          novalidate: true,
          onsubmit: async (ev) => {
            ev.preventDefault();
            const values = {};
            for (const [k, el] of Object.entries(inputs)) {
              if (k === 'sync')
                values[k] = el.checked ? 'true' : 'false';
              else
                values[k] = el.value.trim();
            }
            const events = values.events ? values.events.split(',').map((x) => x.trim()).filter(Boolean) : [];
            let params;
            if (job) {
              // Only what changed: an unchanged destination is not checked again.
              const current = {
                to_date: job.to_date || '',
                sync: job.sync_enabled ? 'true' : 'false',
                compression: job.compression,
                events: (job.events || []).join(', '),
                where: job.where || '',
                s3_region: d.s3_region || '',
                s3_role: d.s3_role || '',
                s3_encryption: d.s3_encryption || 'none',
                s3_kms_key_id: d.s3_kms_key_id || ''
              };
              params = {name: job.name};
              for (const k of EDITABLE) {
                if (d.type === 'local' && k.startsWith('s3_')) continue;
                if (values[k] !== current[k]) params[k] = k === 'events' ? JSON.stringify(events) : values[k];
              }
              if (Object.keys(params).length === 1) {
                fill(result, h('p.note', {role: 'status'}, 'Nothing changed.'));
                return;
              }
            } else {
              params = {
                type: values.type,
                data_source: values.data_source,
                from_date: values.from_date,
                frequency: values.frequency,
                compression: values.compression,
                sync: values.sync
              };
              if (values.name) params.name = values.name;
              if (values.to_date) params.to_date = values.to_date;
              if (events.length) params.events = JSON.stringify(events);
              if (values.where) params.where = values.where;
              const keys = values.type === 'local' ? ['local_path'] : [
                's3_bucket', 's3_region', 's3_role', 's3_prefix', 's3_endpoint', 's3_encryption',
                's3_kms_key_id'
              ];
              for (const k of keys)
                if (values[k] && !(k === 's3_encryption' && values[k] === 'none')) params[k] = values[k];
            }
            submit.disabled = true;
            fill(
                result,
                h('p.muted', {role: 'status'},
                  values.type === 's3' ?
                      'Checking the destination (assume role, write, read, list, delete)…' :
                      'Saving…'));
            try {
              const answer = await pipelineCall(projectId, job ? 'edit' : 'create', params);
              const created = job ? job.name : (answer.pipeline_names || [])[0];
              fill(
                  result,
                  h('p.note', {role: 'status'}, job ? 'Saved. ' : 'Created pipeline ' + created + '. ',
                    h('a', {href: `#/project/${projectId}/pipeline/${encodeURIComponent(created)}`},
                      'Open it')));
              announce(job ? 'Pipeline saved' : 'Pipeline created');
            } catch (e) {
              fill(result, h('h2', {}, job ? 'Not saved' : 'Not created'), errorReport(e));
            }
            submit.disabled = false;
            result.focus();
          }
        },
          field(
              'name', 'Name', inputs.name,
              job ? 'The name cannot change.' :
                    'Optional: 1–64 of A-Z a-z 0-9 - _ . (default: <data_source>-<frequency>-<type>)'),
          field('type', 'Destination type', inputs.type), field('data_source', 'Data', inputs.data_source),
          field(
              'from_date', 'First day (UTC)', inputs.from_date,
              job ? 'Cannot change.' : 'At most six months back'),
          field('to_date', 'Last day (UTC)', inputs.to_date, 'Empty: recurring, exports every new day'),
          field('frequency', 'Frequency', inputs.frequency, job ? 'Cannot change.' : undefined),
          field('compression', 'Compression', inputs.compression),
          h('label.choice',
            {for: 'sync'
            },
            inputs.sync, 'Re-deliver days that receive late events'),
          field('events', 'Only these events', inputs.events, 'Comma-separated names; empty = every event'),
          field('where', 'Filter', inputs.where, 'e.g. properties["plan"] == "pro"'), s3Set, localSet,
          h('div.actions', {}, submit,
            h('a.button.secondary', {
              href: job ? `#/project/${projectId}/pipeline/${encodeURIComponent(job.name)}` :
                          `#/project/${projectId}`
            },
              'Back')));
    inputs.sync.id = 'sync';
    inputs.sync.name = 'sync';
    setPage(job ? 'Edit ' + job.name : 'New pipeline', h('p', {}, h('a', {href: '#/project/' + projectId}, '← ' + projectName)),
            h('h1', {}, job ? 'Edit pipeline ' + job.name : 'New pipeline'), form, result);
  }

  function renderMetrics() {
    const wrap = h('div.grid', {id: 'charts'});
    const status = h('p.muted', {role: 'status'});
    const draw = () => {
      status.textContent = state.metricsError || `Sampling /metrics every ${METRICS_INTERVAL_MS / 1000} s; ${state.samples.length} samples.`;
      fill(wrap,
        lineChart('Ingest events/s', series('sluice_events_accepted_total', 'counter'), 'ev/s', (v) => rateText(v, 'ev/s')),
        lineChart('Export lag', series('sluice_pipeline_export_lag_seconds', 'gauge'), 's', (v) => (v === null || v === undefined ? '—' : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' s')),
        lineChart('Bytes delivered/s', series('sluice_pipeline_bytes_exported_total', 'counter'), 'B/s', (v) => (v === null || v === undefined ? '—' : bytes(Math.round(v)) + '/s')),
        lineChart('Cloud Import events/s', series('sluice_import_events_total', 'counter'), 'ev/s', (v) => rateText(v, 'ev/s')));
    };
    draw();
    metricsListeners.add(draw);
    setPage('Live metrics', h('h1', {}, 'Live metrics'), status, wrap,
            h('p.muted', {}, 'Totals since the server started: see ', h('a', {href: '/metrics', target: '_blank', rel: 'noopener'}, '/metrics'), ' (Prometheus text).'));
  }

  // ---- router -----------------------------------------------------------------------------------------------

  function updateNav(route) {
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === route) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  async function render() {
    const seq = ++state.renderSeq;
    clearTimeout(state.pageTimer);
    metricsListeners.clear();
    const auth = loadAuth();
    document.getElementById('signout').hidden = !auth;
    const hash = location.hash.replace(/^#\/?/, '');
    const parts = hash.split('/').map((p) => decodeURIComponent(p));
    if (!auth) {
      stopTimers();
      updateNav('');
      renderSignIn();
      return;
    }
    startMetrics();
    try {
      if (parts[0] === 'metrics') {
        updateNav('metrics');
        renderMetrics();
      } else if (parts[0] === 'project' && /^\d+$/.test(parts[1] || '')) {
        updateNav('projects');
        if (parts[2] === 'new-pipeline') await renderPipelineForm(seq, parts[1], null);
        else if (parts[2] === 'pipeline' && parts[3] && parts[4] === 'edit') await renderPipelineForm(seq, parts[1], parts[3]);
        else if (parts[2] === 'pipeline' && parts[3]) await renderPipeline(seq, parts[1], parts[3], parts[4] === 'day' ? parts[5] : null);
        else await renderProject(seq, parts[1]);
      } else {
        updateNav('projects');
        await renderProjects(seq);
      }
      if (seq === state.renderSeq && !main.contains(document.activeElement) && document.activeElement === document.body) main.focus({preventScroll: true});
    } catch (e) {
      if (seq !== state.renderSeq) return;
      if (e.status === 401) {
        sessionStorage.removeItem(AUTH_KEY);
        stopTimers();
        renderSignIn('The server no longer accepts these credentials: sign in again.');
        return;
      }
      setPage('Error', h('h1', {}, 'Something went wrong'), h('p.alert', {role: 'alert'}, e.message));
    }
  }

  function tickClock() {
    const d = new Date();
    document.getElementById('clock').textContent = `${utcText(d).slice(11)} · ${localText(d).slice(11)}`;
  }

  document.getElementById('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', render);
  tickClock();
  setInterval(tickClock, 1000);
  render();
})();
