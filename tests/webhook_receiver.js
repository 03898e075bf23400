// webhook_receiver.js — a webhook receiver for tests/webhook.sh, on 127.0.0.1 only.
// node tests/webhook_receiver.js LOG [--port N] [--tls KEY CERT] [--secret S] [--delay MS]
// Listens on N (0: a free port), prints "listening PORT" once it does, and appends one
// JSON line per request to LOG once its answer is decided: {id, event, attempt, sig_ok,
// path, body}. sig_ok checks X-Kefu-Signature against HMAC-SHA256(S, "<ts>.<body>"),
// independently of kefu's code. --delay holds every answer back MS milliseconds (the
// line is written before the wait, so a sender killed meanwhile still leaves it). Node's
// own modules only; it exits on SIGTERM.
'use strict';
const fs = require('fs');
const crypto = require('crypto');

const args = process.argv.slice(2);
const log = args[0];
let port = 0, tls = null, secret = '', delay = 0;
for (let i = 1; i < args.length; i++) {
    if (args[i] === '--port') port = Number(args[++i]);
    else if (args[i] === '--tls') { tls = { key: fs.readFileSync(args[i + 1]), cert: fs.readFileSync(args[i + 2]) }; i += 2; }
    else if (args[i] === '--secret') secret = args[++i];
    else if (args[i] === '--delay') delay = Number(args[++i]);
    else { console.error('webhook_receiver: unknown argument ' + args[i]); process.exit(2); }
}

function handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const ts = req.headers['x-kefu-timestamp'] || '';
        const sig = req.headers['x-kefu-signature'] || '';
        const want = 'sha256=' + crypto.createHmac('sha256', secret).update(ts + '.' + body).digest('hex');
        const line = {
            id: req.headers['x-kefu-event-id'] || null,
            event: req.headers['x-kefu-event'] || null,
            attempt: Number(req.headers['x-kefu-attempt'] || 0),
            sig_ok: secret !== '' && sig.length === want.length && crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want)),
            path: req.url,
            body: body,
        };
        fs.appendFileSync(log, JSON.stringify(line) + '\n');
        setTimeout(() => { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end('ok'); }, delay);
    });
}

const server = tls ? require('https').createServer(tls, handle) : require('http').createServer(handle);
server.listen(port, '127.0.0.1', () => console.log('listening ' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
