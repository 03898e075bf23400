/* service.js — red lines and VIP service levels on a real `kefu serve`
 * (127.0.0.1, a fresh data directory, the bundled rules and a red-line
 * file of its own with windows of seconds, evaluated every 0.2 s), with a
 * webhook receivers on 127.0.0.1 (one asking for the service events with
 * --webhook-events, one for handoffs only): an agent who answers a handoff
 * late crosses first_response, which is breached (log line, webhook event
 * from the outbox, signed, with its type in X-Kefu-Event, gauge, the
 * queue's banner data) and then clears once the window has passed; a VIP
 * left waiting is escalated (event, priority, queue, the console's mark);
 * each receiver gets only what its filter names. Needs no npm package. Prints "ok NAME" / "not ok NAME"
 * (tests/run.sh counts them). */
'use strict';
const { copyDir, spawnServe } = require('./serve.js');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const BIN = process.env.KEFU || path.join(ROOT, process.env.BUILD || 'build', 'kefu');
const AGENT = 'tok-ann-0123456789abcdef';
const SLOW = Number(process.env.KEFU_SLOW || 1);
const SECRET = 'hook-secret';
const SERVICE_EVENTS = ['redline.breached', 'redline.cleared', 'escalated'];

let failed = 0, passed = 0;
function check(name, cond, why) {
  if (cond) { passed++; console.log('ok ' + name); } else { failed++; console.log('not ok ' + name + '\n  ' + String(why).replace(/\n/g, '\n  ')); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const REDLINES = `# the test's red lines: windows of seconds
redline first_response
  metric   agent_first_response
  per      channel
  window   3s
  max      1s

redline vip_wait
  metric   queue_wait
  stat     max
  where    tier = vip
  window   3s
  max      30m

escalate vip
  where    tier = vip
  level    4s
  at       50%
  queue    vip-urgent
  priority urgent
`;

function request(url, method, p, body, token) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, url);
    const data = body ? Buffer.from(JSON.stringify(body)) : null;
    const headers = {};
    if (data) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = data.length; }
    if (token) headers.Authorization = 'Bearer ' + token;
    const req = http.request(u, { method, headers, timeout: 10000 }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { s += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(s); } catch (e) { /* text */ }
        resolve({ status: res.statusCode, json, text: s });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    if (data) req.write(data);
    req.end();
  });
}

/* 1 when the request's X-Kefu-Signature is HMAC-SHA256(SECRET, "<timestamp>.<body>"), computed here. */
function signed(headers, raw) {
  const want = 'sha256=' + crypto.createHmac('sha256', SECRET).update(headers['x-kefu-timestamp'] + '.' + raw).digest('hex');
  return headers['x-kefu-signature'] === want;
}

/* A webhook receiver on 127.0.0.1: resolves {url, events, close()}; each event is
 * {body, type (X-Kefu-Event), id (X-Kefu-Event-Id), signed}. */
function receiver() {
  const events = [];
  const srv = http.createServer((req, res) => {
    let s = '';
    req.on('data', (d) => { s += d; });
    req.on('end', () => {
      const h = req.headers;
      try {
        events.push({ body: JSON.parse(s), type: h['x-kefu-event'] || '', id: h['x-kefu-event-id'] || '', signed: signed(h, s) });
      } catch (e) { events.push({ body: null, raw: s }); }
      res.writeHead(204);
      res.end();
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    url: 'http://127.0.0.1:' + srv.address().port + '/hook', events, close: () => new Promise((r) => srv.close(r))
  })));
}

/* Waits up to ms for pred() to be truthy; returns its last value. */
async function until(pred, ms) {
  const end = Date.now() + ms * SLOW;
  let v;
  while (!(v = await pred()) && Date.now() < end) await sleep(50);
  return v;
}

async function conversation(url, customer, tier) {
  const r = await request(url, 'POST', '/v1/conversations', { channel: 'web', customer: { id: customer, tier }, locale: 'zh' });
  return r.json;
}
async function say(url, conv, text) {
  return request(url, 'POST', '/v1/conversations/' + conv.id + '/messages', { text }, conv.token);
}
function gauge(text, line) {
  const m = new RegExp('^' + line.replace(/[{}"\\]/g, '\\$&') + ' (\\S+)$', 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kefu-service-'));
  copyDir(path.join(ROOT, 'rules'), path.join(dir, 'rules'));
  fs.writeFileSync(path.join(dir, 'rules', 'redlines.conf'), REDLINES);
  const hook = await receiver(); /* the service events */
  const hand = await receiver(); /* handoffs only */
  let s;
  try {
    s = await spawnServe(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', path.join(dir, 'data'), '--rules', path.join(dir, 'rules'),
      '--corpus', path.join(ROOT, 'corpus'), '--web', path.join(ROOT, 'web'), '--rate-limit', '0',
      '--webhook', hook.url, '--webhook-events', SERVICE_EVENTS.join(','), '--webhook', hand.url, '--webhook-events', 'handoff',
      '--watch-interval', '0.2', '--log-level', 'info'], { KEFU_AGENT_TOKENS: 'ann:' + AGENT, KEFU_WEBHOOK_SECRET: SECRET });

    /* 1. first_response: an agent answers a handoff after 2 s, against a line of 1 s */
    let m = await request(s.url, 'GET', '/metrics');
    check('redline-gauges-start-at-0', gauge(m.text, 'kefu_redline_breached{name="first_response"}') === 0 &&
      gauge(m.text, 'kefu_redline_breached{name="vip_wait"}') === 0, m.text.split('\n').filter((l) => l.includes('redline')).join('\n'));
    const c1 = await conversation(s.url, 'u-late', 'regular');
    const h = await say(s.url, c1, '转人工');
    check('redline-handoff', h.json && h.json.state === 'queued', JSON.stringify(h.json));
    const cl = await request(s.url, 'POST', '/v1/conversations/' + c1.id + '/claim', null, AGENT);
    check('redline-claim', cl.status === 200, cl.text);
    await sleep(2100);
    const t0 = Date.now();
    const rep = await request(s.url, 'POST', '/v1/conversations/' + c1.id + '/agent-messages', { text: '您好，久等了' }, AGENT);
    check('redline-agent-reply', rep.status === 200, rep.text);
    const breached = await until(() => hook.events.find((e) => e.body && e.body.event === 'redline.breached' && e.body.redline === 'first_response'), 5000);
    check('redline-breached-webhook', breached && breached.body.group && breached.body.group.channel === 'web' &&
      breached.body.value >= 2 && breached.body.threshold === 1 && breached.body.op === 'max' && breached.body.window_s === 3 &&
      breached.body.samples === 1 && breached.body.metric === 'agent_first_response' && breached.signed &&
      breached.type === 'redline.breached' && /^ev_[0-9a-f]{32}$/.test(breached.id) && breached.body.id === breached.id &&
      !('conversation' in breached.body),
    JSON.stringify(hook.events));
    if (breached) console.log('# breach reached the webhook ' + (Date.now() - t0) + ' ms after the late reply');
    m = await request(s.url, 'GET', '/metrics');
    check('redline-breached-gauge', gauge(m.text, 'kefu_redline_breached{name="first_response"}') === 1 &&
      gauge(m.text, 'kefu_redline_group_breached{name="first_response",channel="web"}') === 1 &&
      gauge(m.text, 'kefu_redline_value{name="first_response",channel="web"}') >= 2,
    m.text.split('\n').filter((l) => l.includes('redline')).join('\n'));
    check('redline-breached-log', /"msg":"red line breached".*"redline":"first_response"/.test(s.stderr()), s.stderr().slice(-1500));
    let q = await request(s.url, 'GET', '/v1/queue', null, AGENT);
    const ban = q.json && Array.isArray(q.json.redlines) ? q.json.redlines.find((b) => b.name === 'first_response') : null;
    /* every kefu metric the Prometheus alerting rules read is one this server exports */
    const alerts = fs.readFileSync(path.join(ROOT, 'ops', 'prometheus', 'kefu-alerts.yml'), 'utf8');
    const used = [...new Set(alerts.match(/\bkefu_[a-z_]+/g))];
    const missing = used.filter((n) => !new RegExp('^' + n + '[{ ]', 'm').test(m.text));
    check('alert-rules-metrics-exported', used.length >= 5 && missing.length === 0, 'not in /metrics: ' + missing.join(', '));
    check('redline-in-queue-list', ban && ban.group.channel === 'web' && ban.metric === 'agent_first_response' && ban.since > 0, q.text);

    /* 2. no new late reply: once the 3 s window has passed the line clears */
    const cleared = await until(() => hook.events.find((e) => e.body && e.body.event === 'redline.cleared' && e.body.redline === 'first_response'), 8000);
    check('redline-cleared-webhook', cleared && cleared.body.samples === 0 && cleared.body.group.channel === 'web' &&
      cleared.type === 'redline.cleared' && cleared.signed && cleared.id !== breached.id, JSON.stringify(hook.events));
    if (cleared) console.log('# cleared ' + (cleared.body.at - breached.body.at) + ' s after the breach (window 3 s)');
    m = await request(s.url, 'GET', '/metrics');
    check('redline-cleared-gauge', gauge(m.text, 'kefu_redline_breached{name="first_response"}') === 0, m.text.split('\n').filter((l) => l.includes('redline')).join('\n'));
    check('redline-cleared-log', /"msg":"red line cleared".*"redline":"first_response"/.test(s.stderr()), s.stderr().slice(-1500));
    q = await request(s.url, 'GET', '/v1/queue', null, AGENT);
    check('redline-queue-list-clear', q.json && Array.isArray(q.json.redlines) && q.json.redlines.length === 0, q.text);
    check('redline-vip-not-breached', !hook.events.some((e) => e.body && e.body.redline === 'vip_wait'), JSON.stringify(hook.events));
    check('redline-events-once', hook.events.filter((e) => e.body && e.body.redline === 'first_response').length === 2, JSON.stringify(hook.events));

    /* 3. a VIP left waiting 50% of a 4 s level is escalated: urgent, moved to vip-urgent, marked */
    const v = await conversation(s.url, 'u-vip', 'vip');
    const vh = await say(s.url, v, '转人工');
    check('escalate-vip-queued', vh.json && vh.json.state === 'queued' && vh.json.queue.name === 'vip', JSON.stringify(vh.json));
    q = await request(s.url, 'GET', '/v1/queue', null, AGENT);
    let item = q.json.conversations.find((c) => c.id === v.id);
    check('escalate-not-yet', item && item.escalated === false && item.priority !== 'urgent', JSON.stringify(item));
    const esc = await until(() => hook.events.find((e) => e.body && e.body.event === 'escalated'), 6000);
    check('escalate-webhook', esc && esc.body.conversation === v.id && esc.body.service_level === 'vip' && esc.body.from_queue === 'vip' &&
      esc.body.queue === 'vip-urgent' && esc.body.priority === 'urgent' && esc.body.waited_s >= 2 && esc.body.level_s === 4 &&
      esc.signed && esc.type === 'escalated' && /^ev_[0-9a-f]{32}$/.test(esc.id), JSON.stringify(hook.events.map((e) => e.body)));
    q = await request(s.url, 'GET', '/v1/queue', null, AGENT);
    item = q.json.conversations.find((c) => c.id === v.id);
    check('escalate-queue-item', item && item.escalated === true && item.queue === 'vip-urgent' && item.priority === 'urgent' && item.position === 1, JSON.stringify(item));
    const ctx = await request(s.url, 'GET', '/v1/conversations/' + v.id, null, AGENT);
    check('escalate-context', ctx.json && ctx.json.conversation.queue === 'vip-urgent' && ctx.json.conversation.priority === 'urgent', ctx.text);
    check('escalate-log', /"msg":"conversation escalated".*"service_level":"vip"/.test(s.stderr()), s.stderr().slice(-1000));
    m = await request(s.url, 'GET', '/metrics');
    check('escalate-metric', gauge(m.text, 'kefu_escalations_total') === 1 && gauge(m.text, 'kefu_queue_length{queue="vip-urgent"}') === 1, m.text.split('\n').filter((l) => /escalat|queue_length/.test(l)).join('\n'));
    await sleep(600);
    check('escalate-once', hook.events.filter((e) => e.body && e.body.event === 'escalated').length === 1, JSON.stringify(hook.events.map((e) => e.body)));
    /* the filters: the service receiver got only service events, each with its type in X-Kefu-Event; the
     * handoff receiver only the two handoffs */
    check('webhook-filter-service', hook.events.length === 3 && hook.events.every((e) => e.body && SERVICE_EVENTS.includes(e.type) &&
      e.type === e.body.event && e.signed), JSON.stringify(hook.events.map((e) => [e.type, e.body])));
    check('webhook-filter-handoff', hand.events.length === 2 && hand.events.every((e) => e.body && e.type === 'handoff' &&
      e.body.event === 'handoff' && e.signed) && hand.events.map((e) => e.body.conversation).join() === [c1.id, v.id].join(),
    JSON.stringify(hand.events.map((e) => [e.type, e.body])));
  } catch (e) {
    check('service-suite', false, e.stack || e);
  } finally {
    if (s) check('service-server-stops', (await s.stop()) === 0, s.stderr().slice(-500));
    await hook.close();
    await hand.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`# service: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
