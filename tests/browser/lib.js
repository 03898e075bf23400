/* lib.js — what the browser tests and the screenshot script share: a real
 * `kefu serve` on 127.0.0.1:0 with a temporary data directory (the bundled
 * rules and corpus plus the hostile fixture in fixture/), stopped by its
 * pid; and Debian's headless Chromium driven by playwright-core, each
 * browser with a fresh user-data directory. */
'use strict';
const { copyDir, spawnServe } = require('../serve.js');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const AGENT_TOKEN = 'b7f3c1d2e4a5968778695a4b3c2d1e0f';
const CHROMIUM = process.env.KEFU_CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/* Starts kefu serve (with extra arguments and environment, if any); resolves
 * {url, pid, dir, stop()} once it prints its URL. */
async function startServer(extra, env) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kefu-browser-'));
  copyDir(path.join(ROOT, 'rules'), path.join(dir, 'rules'));
  copyDir(path.join(__dirname, 'fixture', 'rules'), path.join(dir, 'rules'));
  copyDir(path.join(ROOT, 'corpus'), path.join(dir, 'corpus'));
  copyDir(path.join(__dirname, 'fixture', 'corpus'), path.join(dir, 'corpus', 'fixture'));
  const bin = process.env.KEFU || path.join(ROOT, process.env.BUILD || 'build', 'kefu');
  const s = await spawnServe(bin, ['serve', '--listen', '127.0.0.1:0', '--data', path.join(dir, 'data'),
    '--rules', path.join(dir, 'rules'), '--corpus', path.join(dir, 'corpus'), '--web', path.join(ROOT, 'web'),
    '--rate-limit', '0'].concat(extra || []), Object.assign({ KEFU_AGENT_TOKENS: 'alice:' + AGENT_TOKEN }, env || {}));
  return {
    url: s.url, dir, pid: s.child.pid, stdout: s.stdout,
    stop: async () => { await s.stop(); fs.rmSync(dir, { recursive: true, force: true }); }
  };
}

/* Launches Chromium with a fresh profile; resolves {context, close()}. */
async function launch(options) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kefu-chromium-'));
  const context = await chromium.launchPersistentContext(profile, Object.assign({
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 800 }
  }, options || {}));
  return {
    context,
    close: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); }
  };
}

/* Calls the API as node (fetch from Node 18). */
async function api(base, method, p, body, token) {
  const headers = { Accept: 'application/json' };
  if (body) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(base + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

module.exports = { ROOT, AGENT_TOKEN, startServer, launch, api };
