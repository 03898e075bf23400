/* serve.js — a real `kefu serve` for the node suites (tests/browser/,
 * tests/openapi/): spawned with its arguments, resolved once it prints the
 * URL it serves on, stopped by its pid. Needs no npm package. */
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

/* Copies directory from into to, recursively. */
function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const a = path.join(from, e.name), b = path.join(to, e.name);
    if (e.isDirectory()) copyDir(a, b); else fs.copyFileSync(a, b);
  }
}

/* Spawns bin with args (`serve --listen 127.0.0.1:0 ...`) and env on top of
 * this process's; resolves {url, child, stdout(), stderr(), stop()} once it prints
 * "kefu: serving on URL", rejects when it exits first or is not serving in
 * 60 s. stop() sends SIGTERM and resolves the exit code. */
async function spawnServe(bin, args, env) {
  const child = spawn(bin, args, { env: Object.assign({}, process.env, env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('kefu serve did not start: ' + err.slice(-500))), 60000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /kefu: serving on (\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('kefu serve exited ' + code + ': ' + err.slice(-500))); });
  });
  return {
    url, child, stdout: () => out, stderr: () => err,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.on('exit', (code) => resolve(code));
      process.kill(child.pid, 'SIGTERM');
    })
  };
}

module.exports = { copyDir, spawnServe };
