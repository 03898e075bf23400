/* run.js — the HTTP API journey against a real `kefu serve`, every request
 * and every response checked against docs/openapi.json (JSON Schema 2020-12
 * through ajv): a customer answered by a rule, an article and the fallback,
 * a handoff heard by the agent's queue long-poll, claims, an agent's reply
 * through the long-poll and the SSE stream, transfer, release, resolve,
 * feedback, the figures of the day, the operator's calls, CORS preflights,
 * static files, and the error cases (bad JSON and UTF-8, too deep, wrong
 * content type, 413s, unknown conversation, wrong and missing tokens, 405,
 * unknown path, rate limits, rules that do not compile, the admin API off).
 * A request the test means to be wrong must be rejected by the document too;
 * a response whose status, headers or body the document does not describe
 * fails its case. Prints "ok NAME" / "not ok NAME" (tests/run.sh counts
 * them). KEFU_OPENAPI=FILE checks against another copy of the document. */
'use strict';
const { copyDir, spawnServe } = require('../serve.js');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');

const ROOT = path.resolve(__dirname, '..', '..');
const DOC_FILE = process.env.KEFU_OPENAPI || path.join(ROOT, 'docs', 'openapi.json');
const BIN = process.env.KEFU || path.join(ROOT, process.env.BUILD || 'build', 'kefu');
const ALICE = 'tok-alice-0123456789', BOB = 'tok-bob-0123456789ab', ADMIN = 'adm-0123456789abcdef';
const ORIGIN = 'https://shop.example';

let failed = 0, passed = 0;
function ok(name) { passed++; console.log('ok ' + name); }
function no(name, why) { failed++; console.log('not ok ' + name + '\n  ' + String(why).replace(/\n/g, '\n  ')); }

/* ---- the document ---- */

const doc = JSON.parse(fs.readFileSync(DOC_FILE, 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: true });
ajv.addVocabulary(['openapi', 'jsonSchemaDialect', 'info', 'servers', 'tags', 'paths', 'components', 'webhooks']);
ajv.addSchema(doc, 'kefu');
const compiled = new Map();

function pointer(parts) {
  return '#/' + parts.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}
/* The validator of the schema at parts (a path into the document). */
function validator(parts) {
  const key = pointer(parts);
  if (!compiled.has(key)) compiled.set(key, ajv.compile({ $ref: 'kefu' + key }));
  return compiled.get(key);
}
function errorsOf(v) {
  return (v.errors || []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('; ');
}
/* Follows a local $ref to [object, its path]. */
function deref(obj, parts) {
  while (obj && obj.$ref) {
    parts = obj.$ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    obj = parts.reduce((o, k) => o[k], doc);
  }
  return [obj, parts];
}

/* The document's path templates as regexes, literal paths first. */
const routes = Object.keys(doc.paths).map((tpl) => {
  const names = [];
  const re = tpl.replace(/[.]/g, '\\.').replace(/\{(\w+)\}/g, (m, n) => {
    names.push(n);
    return n === 'file' ? '(.+)' : '([^/]+)';
  });
  return { tpl, names, re: new RegExp('^' + re + '$'), literal: names.length === 0 };
}).sort((a, b) => (b.literal - a.literal) || (b.tpl.length - a.tpl.length));

/* The operation for method and path: {op, parts, params}, or null. */
function findOp(method, urlPath) {
  for (const r of routes) {
    const m = r.re.exec(urlPath);
    if (!m) continue;
    const [item, itemParts] = deref(doc.paths[r.tpl], ['paths', r.tpl]);
    const op = item[method.toLowerCase()];
    const params = {};
    r.names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
    return { item, itemParts, op, parts: op ? itemParts.concat(method.toLowerCase()) : null, params, tpl: r.tpl };
  }
  return null;
}

/* Checks a request against its operation; returns a list of problems. */
function checkRequest(found, method, url, headers, body) {
  const probs = [];
  const { op, item, parts, itemParts } = found;
  const q = new URL(url, 'http://x').searchParams;
  const params = (item.parameters || []).map((p, i) => deref(p, itemParts.concat('parameters', i)))
    .concat((op.parameters || []).map((p, i) => deref(p, parts.concat('parameters', i))));
  for (const [p, pp] of params) {
    let v;
    if (p.in === 'path') v = found.params[p.name];
    else if (p.in === 'query') v = q.has(p.name) ? q.get(p.name) : undefined;
    else if (p.in === 'header') v = headers[p.name.toLowerCase()];
    if (v === undefined) {
      if (p.required) probs.push(`missing ${p.in} parameter ${p.name}`);
      continue;
    }
    const val = validator(pp.concat('schema'));
    if (!val(v)) probs.push(`${p.in} parameter ${p.name}=${v}: ${errorsOf(val)}`);
  }
  for (const k of q.keys()) {
    if (!params.some(([p]) => p.in === 'query' && p.name === k) &&
        !(k === 'token' && (op.security || doc.security || []).some((s) => Object.keys(s).some((n) => doc.components.securitySchemes[n].in === 'query'))))
      probs.push(`query parameter ${k} is not in the document`);
  }
  const sec = op.security || [];
  if (sec.length) {
    const has = sec.some((req) => Object.keys(req).every((n) => {
      const s = doc.components.securitySchemes[n];
      if (s.type === 'http') return /^Bearer \S/.test(headers.authorization || '');
      if (s.in === 'header') return !!headers[s.name.toLowerCase()];
      return q.has(s.name);
    }));
    if (!has) probs.push('no credential the operation accepts');
  }
  let [rb, rbParts] = op.requestBody ? deref(op.requestBody, parts.concat('requestBody')) : [null, null];
  if (body !== undefined && body !== null) {
    if (!rb) probs.push('the operation takes no body');
    else if (!/^application\/json\b/.test(headers['content-type'] || '')) probs.push('body without Content-Type: application/json');
    else {
      let j;
      try { j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)); } catch (e) { probs.push('body is not UTF-8 JSON: ' + e.message); }
      if (j !== undefined) {
        const val = validator(rbParts.concat('content', 'application/json', 'schema'));
        if (!val(j)) probs.push('body: ' + errorsOf(val));
      }
    }
  } else if (rb && rb.required) {
    probs.push('the operation needs a body');
  }
  return probs;
}

/* Checks a response against the response object at parts; returns problems. */
function checkResponseObject(resp, respParts, res) {
  const probs = [];
  for (const [name, h0] of Object.entries(resp.headers || {})) {
    const [h, hp] = deref(h0, respParts.concat('headers', name));
    const v = res.headers[name.toLowerCase()];
    if (v === undefined) {
      if (h.required) probs.push(`missing header ${name}`);
      continue;
    }
    const val = validator(hp.concat('schema'));
    if (!val(v)) probs.push(`header ${name}: ${v}: ${errorsOf(val)}`);
  }
  const ct = res.headers['content-type'];
  if (!resp.content) {
    if (res.body.length) probs.push(`a body the document does not describe (${ct})`);
    return probs;
  }
  if (!ct || !(ct in resp.content)) {
    probs.push(`content type ${ct} is not one of ${Object.keys(resp.content).join(', ')}`);
    return probs;
  }
  const media = resp.content[ct];
  if (!media.schema) return probs;
  let data = res.body.toString('utf8');
  if (ct === 'application/json') {
    try { data = JSON.parse(data); } catch (e) { probs.push('not JSON: ' + e.message); return probs; }
  }
  const val = validator(respParts.concat('content', ct, 'schema'));
  if (!val(data)) probs.push(errorsOf(val));
  return probs;
}

function checkResponse(found, res) {
  const responses = found.op.responses;
  const key = String(res.status) in responses ? String(res.status) : 'default';
  if (!(key in responses)) return [`status ${res.status} is not documented for ${found.tpl}`];
  const [resp, rp] = deref(responses[key], found.parts.concat('responses', key));
  return checkResponseObject(resp, rp, res);
}

/* ---- HTTP ---- */

let base = '';
/* Sends one request; resolves {status, headers, body (Buffer)}. */
function send(method, url, headers, body, baseUrl) {
  return new Promise((resolve, reject) => {
    const u = new URL((baseUrl || base) + url);
    const req = http.request({ method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false });
    let done = false;
    req.setTimeout(20000, () => req.destroy(new Error('timeout')));
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => { done = true; resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }); });
      res.on('error', (e) => { if (!done) reject(e); });
    });
    req.on('error', (e) => { if (!done) reject(e); });
    if (body !== undefined && body !== null) req.write(body);
    req.end();
  });
}

function headersFor(o) {
  const h = Object.assign({}, o.headers || {});
  if (o.token) h.authorization = 'Bearer ' + o.token;
  if (o.json !== undefined || o.raw !== undefined) h['content-type'] = h['content-type'] || 'application/json';
  if (o.noType) delete h['content-type'];
  return h;
}

/* One case: sends the request, checks it and its answer against the
 * document and against what the case expects (status, error code, more).
 * o: {method, url, token, json | raw, headers, status, code, bad, check, base}
 * bad: the request is wrong on purpose, so the document must reject it. */
async function call(name, o) {
  const headers = headersFor(o);
  const body = o.raw !== undefined ? Buffer.from(o.raw) : o.json !== undefined ? Buffer.from(JSON.stringify(o.json)) : null;
  const urlPath = o.url.split('?')[0];
  const found = findOp(o.method, urlPath);
  const probs = [];
  let res = null;
  try {
    res = await send(o.method, o.url, headers, body, o.base);
  } catch (e) {
    no(name, `${o.method} ${o.url}: ${e.message}`);
    return null;
  }
  if (o.undocumented) { /* another method on a documented path, or no such path */
    const [resp, rp] = deref({ $ref: o.undocumented }, []);
    probs.push(...checkResponseObject(resp, rp, res));
  } else if (!found || !found.op) {
    probs.push(`${o.method} ${urlPath} is not in the document`);
  } else {
    const reqProbs = checkRequest(found, o.method, o.url, headers, body);
    if (o.bad && !reqProbs.length) probs.push(`the document accepts this request (${o.bad}), the server must not`);
    if (!o.bad && reqProbs.length) probs.push('request: ' + reqProbs.join('; '));
    probs.push(...checkResponse(found, res).map((p) => `response ${res.status}: ${p}`));
  }
  let json = null;
  if (/^application\/json/.test(res.headers['content-type'] || '')) {
    try { json = JSON.parse(res.body.toString('utf8')); } catch (e) { /* reported above */ }
  }
  if (o.status && res.status !== o.status) probs.push(`status ${res.status}, expected ${o.status}`);
  if (o.code && !(json && json.error && json.error.code === o.code)) probs.push(`code ${json && json.error && json.error.code}, expected ${o.code}`);
  if (o.check) {
    try {
      const why = o.check(json, res);
      if (why) probs.push(why);
    } catch (e) {
      probs.push('check: ' + e.message);
    }
  }
  if (probs.length) no(name, `${o.method} ${o.url} → ${res.status} ${res.body.toString('utf8').slice(0, 600)}\n` + probs.join('\n'));
  else ok(name);
  return { status: res.status, headers: res.headers, json, body: res.body };
}

/* Reads an SSE stream until want(events) holds or ms pass; returns the
 * response, the parsed events and the raw text. */
function stream(url, headers, want, ms) {
  return new Promise((resolve, reject) => {
    const u = new URL(base + url);
    const req = http.get({ hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false });
    let text = '', res0 = null, over = false;
    const finish = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ res: res0, events: parseSse(text), text });
    };
    const timer = setTimeout(finish, ms);
    req.on('response', (res) => {
      res0 = res;
      res.on('data', (c) => {
        text += c;
        if (want(parseSse(text))) finish();
      });
      res.on('end', finish);
      res.on('error', () => finish());
    });
    req.on('error', (e) => { if (!over) { over = true; clearTimeout(timer); reject(e); } });
  });
}

function parseSse(text) {
  const events = [];
  for (const block of text.split('\n\n').slice(0, -1)) {
    const ev = { comments: [] };
    for (const line of block.split('\n')) {
      const m = /^([^:]*)(?::\s?(.*))?$/.exec(line);
      if (line.startsWith(':')) ev.comments.push(line.slice(1));
      else if (m) ev[m[1]] = (ev[m[1]] ? ev[m[1]] + '\n' : '') + (m[2] || '');
    }
    events.push(ev);
  }
  return events;
}

/* ---- the server ---- */

/* Starts kefu serve on dir (rules and web copied there, the bundled corpus) with extra
 * arguments and env; resolves {url, child, stop()}. */
function startServer(dir, extra, env) {
  fs.mkdirSync(dir, { recursive: true });
  return spawnServe(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', path.join(dir, 'data'),
    '--rules', path.join(dir, 'rules'), '--corpus', path.join(ROOT, 'corpus'), '--web', path.join(dir, 'web')].concat(extra), env);
}

/* ---- the journey ---- */

async function journey(tmp) {
  const J = 'application/json';
  let r;
  r = await call('openapi-served', {
    method: 'GET', url: '/openapi.json', status: 200,
    check: (j, res) => (res.body.equals(fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'))) ? null : 'not docs/openapi.json byte for byte')
  });
  await call('healthz', { method: 'GET', url: '/healthz', status: 200, check: (j) => (j.status === 'ok' ? null : 'status ' + j.status) });
  await call('metrics', { method: 'GET', url: '/metrics', status: 200 });
  await call('preflight-allowed', {
    method: 'OPTIONS', url: '/v1/conversations', status: 204, headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
    check: (j, res) => (res.headers['access-control-allow-origin'] === ORIGIN && /POST/.test(res.headers['access-control-allow-methods']) ? null : 'no CORS headers')
  });
  await call('preflight-other-origin-403', {
    method: 'OPTIONS', url: '/v1/queue', status: 403, code: 'origin_not_allowed', headers: { origin: 'https://evil.example' }
  });
  await call('options-without-origin', {
    method: 'OPTIONS', url: '/v1/conversations/c1/messages', status: 204,
    check: (j, res) => (res.headers.allow === 'POST, GET, OPTIONS' ? null : 'Allow: ' + res.headers.allow)
  });

  // a customer, answered by a rule, an article and the fallback
  r = await call('create', {
    method: 'POST', url: '/v1/conversations', status: 201,
    json: { channel: 'web', customer: { id: 'oa-cust-1', name: 'Li', tier: 'regular' }, locale: 'en' }
  });
  if (!r || !r.json || !r.json.id) throw new Error('no conversation to go on with');
  const id = r.json.id, tok = r.json.token;
  const M = `/v1/conversations/${id}/messages`;
  await call('message-rule', {
    method: 'POST', url: M, token: tok, json: { text: 'where is my order KF12345678' }, status: 200,
    check: (j) => (j.reply && j.reply.source === 'rule' && j.reply.intent ? null : 'not a rule answer')
  });
  await call('message-article', {
    method: 'POST', url: M, token: tok, json: { text: '加急快递收费吗' }, status: 200,
    check: (j) => (j.reply && j.reply.source === 'kb' && j.reply.articles.length ? null : 'not an article')
  });
  await call('message-fallback', {
    method: 'POST', url: M, token: tok, json: { text: 'zzqx vlorp' }, status: 200,
    check: (j) => (j.reply && ['fallback', 'clarify'].includes(j.reply.source) ? null : 'source ' + (j.reply && j.reply.source))
  });
  await call('messages-read', { method: 'GET', url: M + '?after=0', token: tok, status: 200, check: (j) => (j.messages.length >= 7 ? null : 'too few') });

  // the handoff, heard by the agent's queue long-poll
  r = await call('queue-empty', { method: 'GET', url: '/v1/queue', token: ALICE, status: 200 });
  const version = r && r.json ? r.json.version : 0;
  const qpoll = call('queue-long-poll', {
    method: 'GET', url: `/v1/queue?since=${version}&wait=10`, token: ALICE, status: 200,
    check: (j) => (j.conversations.some((c) => c.id === id) ? null : 'the handoff is not in it')
  });
  await new Promise((res) => setTimeout(res, 300));
  r = await call('message-handoff', {
    method: 'POST', url: M, token: tok, json: { text: 'I want to talk to a human agent', client_id: 'oa-1' }, status: 200,
    check: (j) => (j.state === 'queued' && j.reply.source === 'handoff' && j.queue ? null : 'not queued')
  });
  const first = r && r.json;
  await call('message-retry-same-answer', {
    method: 'POST', url: M, token: tok, json: { text: 'I want to talk to a human agent', client_id: 'oa-1' }, status: 200,
    check: (j) => (j.seq === first.seq ? null : `seq ${j.seq}, first ${first.seq}`)
  });
  await qpoll;
  await call('message-while-queued', {
    method: 'POST', url: M, token: tok, json: { text: 'hello?' }, status: 200,
    check: (j) => (j.reply === null && j.state === 'queued' ? null : 'the bot answered')
  });
  await call('queue-lists', { method: 'GET', url: '/v1/queue', headers: { 'x-kefu-token': ALICE }, status: 200 });

  // claims
  const C = `/v1/conversations/${id}`;
  await call('claim', { method: 'POST', url: C + '/claim', token: ALICE, status: 200, check: (j) => (j.conversation.agent === 'alice' && j.packet ? null : 'not alice') });
  await call('claim-taken-409', { method: 'POST', url: C + '/claim', token: BOB, status: 409, code: 'conflict' });
  await call('context', { method: 'GET', url: C, token: ALICE, status: 200 });
  await call('context-other-agent-403', { method: 'GET', url: C, token: BOB, status: 403, code: 'forbidden' });

  // the agent's reply through the long-poll and the SSE stream
  r = await call('messages-before-reply', { method: 'GET', url: M, token: tok, status: 200 });
  const last = r && r.json ? Math.max(...r.json.messages.map((m) => m.seq)) : 0;
  const lpoll = call('messages-long-poll', {
    method: 'GET', url: `${M}?after=${last}&wait=10`, token: tok, status: 200,
    check: (j) => (j.messages.some((m) => m.from === 'agent') ? null : 'no agent message')
  });
  const sse = stream(`${C}/events?token=${tok}&after=${last}`, {}, (evs) => evs.some((e) => e.data && /Alice/.test(e.data)), 8000);
  await new Promise((res) => setTimeout(res, 300));
  await call('agent-message', {
    method: 'POST', url: C + '/agent-messages', token: ALICE, json: { text: 'Hi, this is Alice. Let me check.', client_id: 'a-1' }, status: 200
  });
  await lpoll;
  await checkStream('sse', `${C}/events?token=${tok}&after=${last}`, await sse, (evs) => evs.some((e) => e.data && /Alice/.test(e.data)));
  const sse2 = await stream(`${C}/events`, { authorization: 'Bearer ' + ALICE, 'last-event-id': String(last) }, (evs) => evs.some((e) => e.data && /Alice/.test(e.data)), 5000);
  await checkStream('sse-agent-last-event-id', `${C}/events`, sse2, (evs) => evs.some((e) => e.data && /Alice/.test(e.data)), { authorization: 'Bearer ' + ALICE, 'last-event-id': String(last) });
  await call('message-while-agent', {
    method: 'POST', url: M, token: tok, json: { text: 'thanks, the order is KF12345678' }, status: 200,
    check: (j) => (j.reply === null && j.state === 'agent' ? null : 'the bot answered')
  });
  await call('agent-message-not-holder-403', { method: 'POST', url: C + '/agent-messages', token: BOB, json: { text: 'me too' }, status: 403, code: 'forbidden' });

  // transfer, claim the next, release, claim again, resolve
  await call('transfer', { method: 'POST', url: C + '/transfer', token: ALICE, json: { queue: 'billing' }, status: 200 });
  await call('transfer-bad-queue-400', { method: 'POST', url: C + '/transfer', token: ALICE, json: { queue: 7 }, status: 400, code: 'invalid_request', bad: 'queue not a string' });
  await call('claim-next', { method: 'POST', url: '/v1/queue/claim', token: ALICE, status: 200, check: (j) => (j.conversation.id === id ? null : 'another conversation') });
  await call('release', { method: 'POST', url: C + '/release', token: ALICE, json: {}, status: 200 });
  await call('claim-again', { method: 'POST', url: C + '/claim', token: ALICE, status: 200 });
  await call('claim-next-empty-404', { method: 'POST', url: '/v1/queue/claim', token: ALICE, status: 404, code: 'not_found' });
  await call('resolve', { method: 'POST', url: C + '/resolve', token: ALICE, status: 200 });
  await call('resolve-again', { method: 'POST', url: C + '/resolve', token: ALICE, status: 200 });
  await call('release-resolved-409', { method: 'POST', url: C + '/release', token: ALICE, status: 409, code: 'conflict' });
  await call('feedback', { method: 'POST', url: C + '/feedback', token: tok, json: { rating: 5, comment: 'quick and kind' }, status: 200 });
  await call('feedback-range-400', { method: 'POST', url: C + '/feedback', token: tok, json: { rating: 7 }, status: 400, code: 'invalid_request', bad: 'rating 7' });
  await call('message-rating', {
    method: 'POST', url: M, token: tok, json: { text: '4' }, status: 200,
    check: (j) => (j.reply && j.reply.source === 'feedback' && j.state === 'resolved' ? null : 'not taken as a rating')
  });
  await call('message-bot-again', {
    method: 'POST', url: M, token: tok, json: { text: 'how do I get an invoice' }, status: 200,
    check: (j) => (j.state === 'bot' && j.reply ? null : 'not back with the bot')
  });
  const ab = await call('create-ab', { method: 'POST', url: '/v1/conversations', json: { channel: 'web', customer: { id: 'oa-ab' } }, status: 201 });
  await call('message-ab-variant', {
    method: 'POST', url: `/v1/conversations/${ab && ab.json ? ab.json.id : 'cx'}/messages`, token: ab && ab.json ? ab.json.token : '',
    json: { text: 'giftcardtrial' }, status: 200,
    check: (j) => (j.reply && j.reply.intent === 'ab.gift_card' && /gift cards are/i.test(j.reply.text) ? null : 'not the experiment\'s answer')
  });
  await call('stats', {
    method: 'GET', url: '/v1/stats', token: ALICE, status: 200, check: (j) => {
      if (!(j.handoffs >= 1 && j.resolves >= 1)) return 'no handoff counted';
      const e = j.experiments.find((x) => x.intent === 'ab.gift_card');
      if (!e || !e.running || e.control !== 'plain' || e.variants.length !== 2 || e.tests.length !== 1) return 'no experiment: ' + JSON.stringify(j.experiments);
      return e.variants.reduce((n, v) => n + v.answers, 0) === 1 ? null : 'not one answer: ' + JSON.stringify(e);
    }
  });
  await call('stats-since', { method: 'GET', url: '/v1/stats?since=0', token: ALICE, status: 200 });
  await call('stats-bad-since-400', { method: 'GET', url: '/v1/stats?since=yesterday', token: ALICE, status: 400, code: 'invalid_request', bad: 'since not a number' });

  // errors of the customer side
  await call('bad-json-400', { method: 'POST', url: M, token: tok, raw: '{"text":', status: 400, code: 'invalid_json', bad: 'not JSON' });
  await call('duplicate-key-400', { method: 'POST', url: M, token: tok, raw: '{"text":"a","text":"b"}', status: 400, code: 'invalid_json' });
  await call('invalid-utf8-400', { method: 'POST', url: M, token: tok, raw: Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), status: 400, code: 'invalid_utf8', bad: 'not UTF-8' });
  await call('too-deep-400', { method: 'POST', url: M, token: tok, raw: '{"text":"hi","x":' + '['.repeat(18) + '1' + ']'.repeat(18) + '}', status: 400, code: 'too_deep' });
  await call('missing-text-400', { method: 'POST', url: M, token: tok, json: { txt: 'hi' }, status: 400, code: 'invalid_request', bad: 'no text' });
  await call('blank-text-400', { method: 'POST', url: M, token: tok, json: { text: '   ' }, status: 400, code: 'invalid_request', bad: 'only spaces' });
  await call('no-body-400', { method: 'POST', url: M, token: tok, status: 400, code: 'invalid_request', bad: 'no body' });
  await call('not-an-object-400', { method: 'POST', url: M, token: tok, raw: '[1]', status: 400, code: 'invalid_request', bad: 'an array' });
  await call('create-no-customer-400', { method: 'POST', url: '/v1/conversations', json: { channel: 'web' }, status: 400, code: 'invalid_request', bad: 'no customer' });
  await call('content-type-415', { method: 'POST', url: M, token: tok, raw: '{"text":"hi"}', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type', bad: 'text/plain' });
  await call('oversize-413', { method: 'POST', url: M, token: tok, raw: ' '.repeat(70000), status: 413, code: 'too_large', bad: 'not JSON, too big' });
  await call('message-too-long-413', { method: 'POST', url: M, token: tok, json: { text: 'a'.repeat(5000) }, status: 413, code: 'message_too_long', bad: '5000 bytes' });
  await call('unknown-conversation-404', { method: 'GET', url: '/v1/conversations/cnosuchthing/messages', token: tok, status: 404, code: 'not_found' });
  r = await call('create-second', { method: 'POST', url: '/v1/conversations', json: { channel: 'app', customer: { id: 'oa-cust-2' } }, status: 201 });
  const id2 = r && r.json ? r.json.id : 'cx';

  await call('other-conversation-token-403', { method: 'GET', url: `/v1/conversations/${id2}/messages`, token: tok, status: 403, code: 'forbidden' });
  await call('wrong-token-403', { method: 'POST', url: `/v1/conversations/${id2}/messages`, token: 'f'.repeat(32), json: { text: 'hi' }, status: 403, code: 'forbidden' });
  await call('no-token-401', { method: 'GET', url: M, status: 401, code: 'unauthorized', bad: 'no token' });
  await call('wrong-agent-token-401', { method: 'GET', url: '/v1/queue', token: 'tok-nobody', status: 401, code: 'unauthorized' });
  await call('customer-token-for-agent-call-401', { method: 'GET', url: C, token: tok, status: 401, code: 'unauthorized' });
  await call('bad-after-400', { method: 'GET', url: M + '?after=-1', token: tok, status: 400, code: 'invalid_request', bad: 'after -1' });
  await call('bad-event-id-400', { method: 'GET', url: C + '/events', token: tok, headers: { 'last-event-id': 'x' }, status: 400, code: 'invalid_request', bad: 'Last-Event-ID x' });
  await call('method-405', {
    method: 'DELETE', url: '/v1/queue', token: ALICE, status: 405, code: 'method_not_allowed', undocumented: '#/components/responses/MethodNotAllowed',
    check: (j, res) => (res.headers.allow === 'GET, OPTIONS' ? null : 'Allow: ' + res.headers.allow)
  });
  await call('method-405-conversation', { method: 'PUT', url: M, token: tok, json: { text: 'x' }, status: 405, undocumented: '#/components/responses/MethodNotAllowed' });
  await call('method-405-static', { method: 'POST', url: '/widget.js', status: 405, undocumented: '#/components/responses/MethodNotAllowed' });
  await call('unknown-path-404', { method: 'GET', url: '/v1/nope', status: 404, code: 'not_found', undocumented: '#/components/responses/NotFound' });

  // the operator
  await call('reload', { method: 'POST', url: '/v1/admin/reload', token: ADMIN, status: 200 });
  fs.writeFileSync(path.join(tmp, 'a', 'rules', 'zz-broken.rules'), 'intent x.y\n  pattern: [nosuch]\n');
  await call('reload-broken-409', {
    method: 'POST', url: '/v1/admin/reload', headers: { 'x-kefu-token': ADMIN }, status: 409, code: 'rules_invalid',
    check: (j) => (j.error.diagnostics.some((d) => d.severity === 'error' && /zz-broken/.test(d.file)) ? null : 'no diagnostic for the file')
  });
  fs.unlinkSync(path.join(tmp, 'a', 'rules', 'zz-broken.rules'));
  await call('reload-agent-token-401', { method: 'POST', url: '/v1/admin/reload', token: ALICE, status: 401, code: 'unauthorized' });
  await call('erase-no-customer-400', { method: 'POST', url: '/v1/admin/erase', token: ADMIN, json: {}, status: 400, code: 'invalid_request', bad: 'no customer' });
  await call('erase-unknown-404', { method: 'POST', url: '/v1/admin/erase', token: ADMIN, json: { customer: 'nobody-here' }, status: 404, code: 'not_found' });
  await call('erase', {
    method: 'POST', url: '/v1/admin/erase', token: ADMIN, json: { customer: 'oa-cust-2' }, status: 200,
    check: (j) => (j.conversations === 1 ? null : 'conversations ' + j.conversations)
  });
  await call('erased-conversation-404', { method: 'GET', url: `/v1/conversations/${id2}/messages`, token: tok, status: 404, code: 'not_found' });

  // presence from the console
  await call('presence-away', { method: 'POST', url: '/v1/agent/presence', token: ALICE, json: { status: 'away' }, status: 200, check: (j) => (j.status === 'away' && j.agent === 'alice' ? null : JSON.stringify(j)) });
  await call('presence-online', { method: 'POST', url: '/v1/agent/presence', token: ALICE, json: { status: 'online' }, status: 200 });
  await call('presence-bad-400', { method: 'POST', url: '/v1/agent/presence', token: ALICE, json: { status: 'asleep' }, status: 400, code: 'invalid_request', bad: 'an unknown status' });
  await call('presence-no-token-401', { method: 'POST', url: '/v1/agent/presence', json: { status: 'away' }, status: 401, code: 'unauthorized', bad: 'no token' });

  // agent accounts: a token shown once, refused at once when disabled or rotated
  const added = await call('agent-add', {
    method: 'POST', url: '/v1/admin/agents', token: ADMIN, json: { name: 'carol', skills: ['general'], capacity: 2 }, status: 201,
    check: (j) => (/^[0-9a-f]{32}$/.test(j.token) && j.state === 'enabled' ? null : 'no token')
  });
  const carol = added && added.json && added.json.token ? added.json.token : 'no-token-0123456789';
  await call('agent-add-twice-409', { method: 'POST', url: '/v1/admin/agents', token: ADMIN, json: { name: 'carol' }, status: 409, code: 'conflict' });
  await call('agent-add-bad-name-400', { method: 'POST', url: '/v1/admin/agents', token: ADMIN, json: { name: 'Carol!' }, status: 400, code: 'invalid_request', bad: 'a bad name' });
  await call('agent-add-agent-token-401', { method: 'POST', url: '/v1/admin/agents', token: ALICE, json: { name: 'dave' }, status: 401, code: 'unauthorized' });
  await call('agent-list', {
    method: 'GET', url: '/v1/admin/agents', token: ADMIN, status: 200,
    check: (j) => (j.agents.some((a) => a.name === 'carol' && a.capacity === 2 && a.state === 'enabled') && !JSON.stringify(j).includes(carol) ? null : 'carol missing, or her token shown')
  });
  await call('agent-account-queue', {
    method: 'GET', url: '/v1/queue', token: carol, status: 200,
    check: (j) => (JSON.stringify(j.queues) === '["general"]' ? null : 'queues ' + JSON.stringify(j.queues))
  });
  await call('agent-disable', { method: 'POST', url: '/v1/admin/agents/carol/disable', token: ADMIN, status: 200, check: (j) => (j.state === 'disabled' ? null : j.state) });
  await call('agent-disabled-401', { method: 'GET', url: '/v1/queue', token: carol, status: 401, code: 'unauthorized' });
  await call('agent-enable', { method: 'POST', url: '/v1/admin/agents/carol/enable', token: ADMIN, status: 200, check: (j) => (j.state === 'enabled' ? null : j.state) });
  await call('agent-enabled-again', { method: 'GET', url: '/v1/queue', token: carol, status: 200 });
  const rot = await call('agent-rotate', {
    method: 'POST', url: '/v1/admin/agents/carol/rotate', token: ADMIN, status: 200,
    check: (j) => (/^[0-9a-f]{32}$/.test(j.token) && j.token !== carol ? null : 'no new token')
  });
  await call('agent-rotated-old-401', { method: 'GET', url: '/v1/queue', token: carol, status: 401, code: 'unauthorized' });
  await call('agent-rotated-new', { method: 'GET', url: '/v1/queue', token: rot && rot.json && rot.json.token ? rot.json.token : 'x', status: 200 });
  await call('agent-unknown-404', { method: 'POST', url: '/v1/admin/agents/nobody/disable', token: ADMIN, status: 404, code: 'not_found' });

  // static files
  await call('static-widget', { method: 'GET', url: '/widget.js', status: 200 });
  await call('static-console', { method: 'GET', url: '/console', status: 200 });
  await call('static-demo', { method: 'GET', url: '/demo', status: 200 });
  await call('static-console-file', { method: 'GET', url: '/console/console.css', status: 200 });
  await call('static-file', { method: 'GET', url: '/static/hello.txt', status: 200 });
  await call('static-missing-404', { method: 'GET', url: '/static/nope.txt', status: 404, code: 'not_found' });
  await call('static-dotdot-404', { method: 'GET', url: '/static/%2e%2e/secret.txt', status: 404, code: 'not_found' });
}

/* Checks an SSE stream: its response against the document, each event's
 * data against the schema the document names for it. */
async function checkStream(name, url, got, want, headers) {
  const probs = [];
  const found = findOp('GET', url.split('?')[0]);
  if (!got.res) return no(name, 'no response');
  const res = { status: got.res.statusCode, headers: got.res.headers, body: Buffer.from(got.text) };
  const reqProbs = checkRequest(found, 'GET', url, headers || {}, null);
  if (reqProbs.length) probs.push('request: ' + reqProbs.join('; '));
  probs.push(...checkResponse(found, res));
  const media = found.op.responses['200'].content['text/event-stream'];
  const val = validator(found.parts.concat('responses', '200', 'content', 'text/event-stream', 'x-kefu-event-data'));
  if (!got.text.startsWith('retry: 2000\n')) probs.push('the stream does not start with retry: 2000');
  for (const e of got.events) {
    if (e.retry !== undefined || (e.comments.length && e.data === undefined)) continue;
    if (e.event !== 'message') probs.push('event ' + e.event);
    let d;
    try { d = JSON.parse(e.data); } catch (err) { probs.push('data is not JSON: ' + e.data); continue; }
    if (!val(d)) probs.push(`event ${e.id}: ${errorsOf(val)}`);
    if (String(d.seq) !== e.id) probs.push(`id ${e.id} but seq ${d.seq}`);
  }
  if (!media) probs.push('no text/event-stream in the document');
  if (!want(got.events)) probs.push('the expected event did not come');
  if (probs.length) no(name, got.text.slice(0, 600) + '\n' + probs.join('\n'));
  else ok(name);
}

/* A second server: rate limits on, the admin API off. */
async function limits(tmp) {
  const dir = path.join(tmp, 'b');
  copyDir(path.join(ROOT, 'rules'), path.join(dir, 'rules'));
  fs.mkdirSync(path.join(dir, 'web'), { recursive: true });
  const s = await startServer(dir, ['--rate-limit', '1'], { KEFU_AGENT_TOKENS: 'alice:' + ALICE, KEFU_ADMIN_TOKEN: '' });
  try {
    await call('admin-off-403', { method: 'POST', url: '/v1/admin/reload', token: ADMIN, status: 403, code: 'forbidden', base: s.url });
    let r = null;
    for (let i = 0; i < 30; i++) {
      r = await send('GET', '/v1/queue', { authorization: 'Bearer ' + ALICE }, null, s.url);
      if (r.status === 429) break;
    }
    await call('rate-limited-429', {
      method: 'GET', url: '/v1/queue', token: ALICE, status: 429, code: 'rate_limited', base: s.url,
      check: (j, res) => (Number(res.headers['retry-after']) >= 1 ? null : 'Retry-After ' + res.headers['retry-after'])
    });
    await call('healthz-not-limited', { method: 'GET', url: '/healthz', status: 200, base: s.url });
  } finally {
    await s.stop();
  }
}

/* Every schema of the document compiles (strict mode catches unknown keywords). */
function compileAll() {
  const probs = [];
  for (const name of Object.keys(doc.components.schemas)) {
    try { validator(['components', 'schemas', name]); } catch (e) { probs.push(name + ': ' + e.message); }
  }
  if (probs.length) no('document-compiles', probs.join('\n'));
  else ok('document-compiles');
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kefu-openapi-'));
  let server = null;
  try {
    compileAll();
    const dir = path.join(tmp, 'a');
    copyDir(path.join(ROOT, 'rules'), path.join(dir, 'rules'));
    /* an A/B-tested reply, so that /v1/stats has an experiment to describe */
    fs.writeFileSync(path.join(dir, 'rules', 'ab.rules'), 'intent ab.gift_card\n  match giftcardtrial\n  variant plain 50\n' +
      '  variant warm 50\n  reply ~plain Gift cards are sold at the checkout.\n  reply ~warm Happy to help: gift cards are at the checkout.\n');
    copyDir(path.join(ROOT, 'web'), path.join(dir, 'web'));
    fs.mkdirSync(path.join(dir, 'web', 'static'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'web', 'static', 'hello.txt'), 'kefu\n');
    fs.writeFileSync(path.join(dir, 'web', 'secret.txt'), 'secret\n');
    server = await startServer(dir, ['--rate-limit', '0', '--cors-origin', ORIGIN], {
      KEFU_AGENT_TOKENS: `alice:${ALICE},bob:${BOB}`, KEFU_ADMIN_TOKEN: ADMIN
    });
    base = server.url;
    await journey(tmp);
    const code = await server.stop();
    server = null;
    if (code === 0) ok('serve-stops-cleanly'); else no('serve-stops-cleanly', 'exit status ' + code);
    await limits(tmp);
  } catch (e) {
    no('openapi-journey', e.stack || e.message);
  } finally {
    if (server) await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  process.exit(failed ? 1 : 0);
}

main();
