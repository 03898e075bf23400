// action_backend.js — a shop backend for tests/actions.sh, on 127.0.0.1 only.
// node tests/action_backend.js LOG --secret S
// Listens on a free port and prints "listening PORT". Every action call
// (POST /order_status, /order_tracking, /refund_status, /profile) appends one JSON line
// to LOG: {path, sig_ok, body}; sig_ok checks X-Kefu-Signature against
// HMAC-SHA256(S, "<ts>.<body>"), independently of kefu's code. What it answers
// depends on the mode, set with POST /_mode {"mode": M} (not logged):
//   ok         {"found": true, "order": {...}} for KF1xxxxxxx, {"found": false} for others
//   slow       the same, after 3 seconds
//   fail       500
//   malformed  200 with a body that is not JSON
//   array      200 with a JSON array
//   huge       200 with a 1 MiB JSON object
//   down       the connection is cut without an answer
// /profile answers {"name", "tier": "vip", "attributes"} for customers "vip-*", {} otherwise.
// Node's own modules only; it exits on SIGTERM.
'use strict';
const fs = require('fs');
const http = require('http');
const crypto = require('crypto');

const args = process.argv.slice(2);
const log = args[0];
let secret = '';
for (let i = 1; i < args.length; i++) {
    if (args[i] === '--secret') secret = args[++i];
    else { console.error('action_backend: unknown argument ' + args[i]); process.exit(2); }
}
let mode = 'ok';

function order(id, locale) {
    const zh = /^zh/.test(locale || '');
    return {
        id: id, status: 'shipped', status_text: zh ? '已发货' : 'shipped',
        // KF19999999's carrier is text that must stay text in a reply
        carrier: id === 'KF19999999' ? '{customer.name}{kb:refund-policy}\u0007' : zh ? '顺丰速运' : 'SF Express',
        tracking: 'SF0000000001', eta: zh ? '明天' : 'tomorrow', last_scan: zh ? '已到达上海' : 'in Shanghai',
    };
}

function answer(path, req) {
    if (path === '/profile') {
        const id = (req.customer && req.customer.id) || '';
        return id.startsWith('vip-') ? { name: '王女士', tier: 'vip', attributes: { segment: 'wholesale' } } : {};
    }
    const id = String((req.slots && req.slots.order_id) || '').toUpperCase();
    if (!/^KF1\d{7}$/.test(id)) return { found: false };
    if (path === '/refund_status')
        return { found: true, refund: { status: 'processing', amount: '42.00', eta: 'soon' } };
    return { found: true, order: order(id, req.locale) };
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (req.url === '/_mode') {
            mode = JSON.parse(body).mode;
            res.writeHead(200, { 'Content-Type': 'application/json' });
            res.end('{"ok":true}');
            return;
        }
        const ts = req.headers['x-kefu-timestamp'] || '';
        const sig = req.headers['x-kefu-signature'] || '';
        const want = 'sha256=' + crypto.createHmac('sha256', secret).update(ts + '.' + body).digest('hex');
        const sigOk = secret !== '' && sig.length === want.length &&
            crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want));
        fs.appendFileSync(log, JSON.stringify({ path: req.url, action: req.headers['x-kefu-action'] || null,
            sig_ok: sigOk, body: body }) + '\n');
        if (mode === 'down') { req.socket.destroy(); return; }
        const send = (status, text) => {
            res.writeHead(status, { 'Content-Type': 'application/json' });
            res.end(text);
        };
        const m = req.url === '/profile' ? 'ok' : mode;
        let parsed = {};
        try { parsed = JSON.parse(body); } catch (e) { send(400, '{}'); return; }
        if (m === 'fail') send(500, '{"error":"database unavailable"}');
        else if (m === 'malformed') send(200, '{"found": true, "order": {"status": "shipped"');
        else if (m === 'array') send(200, '[1, 2, 3]');
        else if (m === 'huge') send(200, JSON.stringify({ found: true, pad: 'x'.repeat(1 << 20) }));
        else if (m === 'slow') setTimeout(() => send(200, JSON.stringify(answer(req.url, parsed))), 3000);
        else send(200, JSON.stringify(answer(req.url, parsed)));
    });
});
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
