// The admin dashboard (GET / on the admin listener): one self-contained page, no build
// step, no dependency. It holds no data: its script fetches GET /status, GET /metrics and
// GET /blocks every few seconds with the admin token the user types in.
//
// Why the page itself needs no token: it is the same static text for everyone, and a
// browser navigating to a URL cannot add an Authorization header anyway. The token is asked
// for on the page, kept in sessionStorage (gone when the tab closes, never sent as a cookie,
// so no other site can make the browser use it: no CSRF), and sent as `Authorization:
// Bearer` on the page's own same-origin fetches.
//
// Why it is safe to render what the gateway reports (IP addresses, plugin names, reason
// codes, route labels that came from clients or config): every value goes into the page
// with textContent or as a property, never as HTML; and the Content-Security-Policy below
// allows only this page's own script and style (by hash), no eval, no other origin, no
// framing, no form posts. Bars are <progress> elements, so no inline style is needed.
import { createHash } from 'node:crypto'

const STYLE = String.raw`
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0; background: Canvas; color: CanvasText; }
header { display: flex; gap: 1rem; align-items: baseline; padding: .75rem 1rem; border-bottom: 1px solid GrayText; }
header h1 { font-size: 1.2rem; margin: 0; }
#state { color: GrayText; }
form { display: flex; gap: .5rem; align-items: center; padding: .5rem 1rem; flex-wrap: wrap; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 1rem; padding: 1rem; }
section { border: 1px solid GrayText; border-radius: .4rem; padding: .5rem 1rem 1rem; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: .5rem 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dt { color: GrayText; }
dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid color-mix(in srgb, GrayText 40%, transparent); }
td.n { text-align: right; }
progress { width: 100%; }
.muted { color: GrayText; }
`

const SCRIPT = String.raw`
'use strict';
(function () {
  var KEY = 'tollgate-admin-token';
  var REFRESH_MS = 3000;
  var prev = null;
  var timer = null;

  function $ (id) { return document.getElementById(id); }
  function setText (id, v) { $(id).textContent = String(v); }
  function token () { try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; } }
  function state (text) { setText('state', text); document.body.dataset.state = text; }

  function get (path, accept) {
    var headers = { accept: accept };
    var t = token();
    if (t !== '') headers.authorization = 'Bearer ' + t;
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  }

  // Rows built with textContent only: nothing the gateway reports is ever parsed as HTML.
  function fillTable (id, rows, empty) {
    var body = $(id).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      var tr = document.createElement('tr');
      var td = document.createElement('td');
      td.colSpan = $(id).tHead.rows[0].cells.length;
      td.className = 'muted';
      td.textContent = empty;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (c) {
        var td = document.createElement('td');
        if (c instanceof Node) td.appendChild(c);
        else {
          td.textContent = String(c);
          if (typeof c === 'number') td.className = 'n';
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  // Prometheus text exposition format 0.0.4: "name{label="value",...} value [timestamp]".
  function parseLabels (s) {
    var labels = Object.create(null);
    var re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g;
    var m;
    while ((m = re.exec(s)) !== null) {
      labels[m[1]] = m[2].replace(/\\(.)/g, function (_, c) { return c === 'n' ? '\n' : c; });
    }
    return labels;
  }
  function parseValue (s) {
    if (s === '+Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    return Number(s);
  }
  function parseProm (text) {
    var out = [];
    text.split('\n').forEach(function (raw) {
      var line = raw.trim();
      if (line === '' || line.charAt(0) === '#') return;
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/.exec(line);
      if (m === null) return;
      out.push({ name: m[1], labels: parseLabels(m[2] || ''), value: parseValue(m[3]) });
    });
    return out;
  }
  function sum (samples, name, keyOf) {
    var by = Object.create(null);
    samples.forEach(function (s) {
      if (s.name !== name || !isFinite(s.value)) return;
      var k = keyOf === undefined ? '' : keyOf(s.labels);
      by[k] = (by[k] || 0) + s.value;
    });
    return by;
  }
  // histogram_quantile over cumulative buckets {le: count}, as Prometheus interpolates.
  function quantile (q, buckets) {
    var les = Object.keys(buckets).map(parseValue).sort(function (a, b) { return a - b; });
    if (les.length === 0) return NaN;
    var total = buckets[les[les.length - 1] === Infinity ? '+Inf' : String(les[les.length - 1])];
    if (!(total > 0)) return NaN;
    var rank = q * total;
    var lower = 0;
    var below = 0;
    for (var i = 0; i < les.length; i++) {
      var le = les[i];
      var c = buckets[le === Infinity ? '+Inf' : String(le)];
      if (c >= rank) {
        if (le === Infinity) return lower;
        return lower + (le - lower) * ((rank - below) / Math.max(c - below, 1e-12));
      }
      lower = le;
      below = c;
    }
    return lower;
  }
  function ms (seconds) { return isNaN(seconds) ? '–' : (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1) + ' ms'; }

  function showStatus (s) {
    var workers = Array.isArray(s.workers) ? s.workers : [];
    var alive = workers.filter(function (w) { return w.alive; }).length;
    setText('workers', alive + ' / ' + workers.length + ' serving');
    setText('generation', s.generation);
    setText('config-version', s.configVersion);
    setText('uptime', s.uptimeS + ' s');
    fillTable('worker-table', workers.map(function (w) {
      return [w.slot, w.alive ? 'serving' : 'down', w.generation === undefined ? '–' : w.generation, w.inFlight === undefined ? '–' : w.inFlight];
    }), 'no workers');
    // One row per target of each upstream; a gateway without upstream status sends none.
    var rows = [];
    (Array.isArray(s.upstreams) ? s.upstreams : []).forEach(function (u) {
      (u.targets || []).forEach(function (x) {
        rows.push([(u.routes || []).join(', '), x.url, x.weight, x.health + (x.ejectedUntil ? ' until ' + new Date(x.ejectedUntil).toLocaleTimeString() : ''), x.inFlight]);
      });
    });
    fillTable('upstream-table', rows, 'no upstreams');
  }

  function showMetrics (text, now) {
    var samples = parseProm(text);
    var requests = sum(samples, 'tollgate_requests_total')[''] || 0;
    var classes = sum(samples, 'tollgate_requests_total', function (l) { return l.status_class || '?'; });
    var buckets = sum(samples, 'tollgate_request_duration_seconds_bucket', function (l) { return l.le; });
    var win = buckets;
    if (prev !== null) {
      var secs = (now - prev.t) / 1000;
      setText('rps', secs > 0 ? Math.max(0, (requests - prev.requests) / secs).toFixed(1) : '–');
      // Latency over the last interval when it had requests, else since start.
      var delta = Object.create(null);
      var any = false;
      Object.keys(buckets).forEach(function (le) {
        delta[le] = buckets[le] - (prev.buckets[le] || 0);
        if (delta[le] > 0) any = true;
      });
      if (any) win = delta;
    }
    prev = { t: now, requests: requests, buckets: buckets };
    setText('p50', ms(quantile(0.5, win)));
    setText('p99', ms(quantile(0.99, win)));
    setText('requests-total', requests);
    var total = 0;
    Object.keys(classes).forEach(function (k) { total += classes[k]; });
    fillTable('status-classes', Object.keys(classes).sort().map(function (k) {
      var bar = document.createElement('progress');
      bar.max = total > 0 ? total : 1;
      bar.value = classes[k];
      return [k, classes[k], bar];
    }), 'no requests yet');
    var denials = sum(samples, 'tollgate_denials_total', function (l) { return (l.plugin || '?') + '\u0000' + (l.code || '?'); });
    fillTable('denials', Object.keys(denials).sort(function (a, b) { return denials[b] - denials[a]; }).slice(0, 10).map(function (k) {
      var parts = k.split('\u0000');
      return [parts[0], parts[1], denials[k]];
    }), 'no denials');
  }

  function showBlocks (b) {
    setText('blocks-summary', b.blockedIps + ' blocked now, ' + b.autoblocksTotal + ' placed since start');
    fillTable('blocked', b.blocks.slice(0, 10).map(function (e) {
      var why = e.reason.count + ' bad answers' + (e.reason.statuses.length > 0 ? ': ' + e.reason.statuses.map(function (r) { return r.status + ' \u00d7 ' + r.count; }).join(', ') : '');
      return [e.ip, new Date(e.until).toLocaleTimeString(), why];
    }), 'no address is blocked');
  }

  async function refresh () {
    try {
      var st = await get('/status', 'application/json');
      if (st.status === 401) { state('token required'); return; }
      if (!st.ok) { state('status: HTTP ' + st.status); return; }
      showStatus(await st.json());
      state('connected');
    } catch (e) {
      state('gateway unreachable');
      return;
    }
    try {
      var m = await get('/metrics', 'text/plain');
      if (!m.ok) throw new Error('HTTP ' + m.status);
      showMetrics(await m.text(), Date.now());
      setText('metrics-state', 'metrics: live');
    } catch (e) {
      setText('metrics-state', 'metrics unavailable');
      prev = null;
      fillTable('status-classes', [], 'metrics unavailable');
      fillTable('denials', [], 'metrics unavailable');
    }
    try {
      var b = await get('/blocks', 'application/json');
      if (!b.ok) throw new Error('HTTP ' + b.status);
      showBlocks(await b.json());
    } catch (e) {
      setText('blocks-summary', 'block list unavailable');
    }
  }

  function loop () {
    clearTimeout(timer);
    refresh().finally(function () { timer = setTimeout(loop, REFRESH_MS); });
  }

  $('auth').addEventListener('submit', function (ev) {
    ev.preventDefault();
    try { sessionStorage.setItem(KEY, $('token').value); } catch (e) {}
    $('token').value = '';
    prev = null;
    loop();
  });
  $('forget').addEventListener('click', function () {
    try { sessionStorage.removeItem(KEY); } catch (e) {}
    state('token forgotten');
  });
  loop();
})();
`

const BODY = String.raw`
<header><h1>tollgate</h1><span id="state">connecting</span></header>
<form id="auth" autocomplete="off">
  <label>Admin token <input id="token" type="password" autocomplete="off" spellcheck="false"></label>
  <button type="submit" id="connect">Connect</button>
  <button type="button" id="forget">Forget token</button>
</form>
<main>
  <section>
    <h2>Gateway</h2>
    <dl>
      <dt>Workers</dt><dd id="workers">–</dd>
      <dt>Generation</dt><dd id="generation">–</dd>
      <dt>Config version</dt><dd id="config-version">–</dd>
      <dt>Uptime</dt><dd id="uptime">–</dd>
    </dl>
    <table id="worker-table"><thead><tr><th>slot</th><th>state</th><th>generation</th><th>in flight</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Traffic</h2>
    <p id="metrics-state" class="muted">metrics: waiting</p>
    <dl>
      <dt>Requests/s</dt><dd id="rps">–</dd>
      <dt>Requests</dt><dd id="requests-total">–</dd>
      <dt>p50 latency</dt><dd id="p50">–</dd>
      <dt>p99 latency</dt><dd id="p99">–</dd>
    </dl>
    <table id="status-classes"><thead><tr><th>status</th><th>count</th><th>share</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Denials by reason</h2>
    <table id="denials"><thead><tr><th>plugin</th><th>code</th><th>count</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Blocked addresses</h2>
    <p id="blocks-summary" class="muted">–</p>
    <table id="blocked"><thead><tr><th>address</th><th>until</th><th>reason</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Upstream targets</h2>
    <table id="upstream-table"><thead><tr><th>routes</th><th>target</th><th>weight</th><th>health</th><th>in flight</th></tr></thead><tbody></tbody></table>
  </section>
</main>
`

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/** The page. */
export const DASHBOARD_HTML = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
  '<meta name="viewport" content="width=device-width, initial-scale=1"><title>tollgate</title>' +
  `<style>${STYLE}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>\n`

/**
 * Its Content-Security-Policy: only this script and this style (by hash), fetches to this
 * origin only, nothing else loaded, never framed, no form posts, no <base>.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')
