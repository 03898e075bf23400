// flame.js — an SVG flame graph from a callgrind profile (bench/callgrind.sh).
//   node bench/flame.js PROFILE OUT.svg [TITLE]
// Callgrind keeps each function's own instructions and, for every caller →
// callee edge, the instructions spent below that call; it keeps no whole
// stacks. The graph is grown from the threads' entry functions: a child
// box is as wide as the instructions of its edge, and a function reached
// from several callers shows under each caller the same mix of children
// (its edges scaled by that caller's share) — exact for the many functions
// called from one place, an estimate for shared helpers such as malloc.
// Boxes narrower than 0.15% of the total are left out; recursion stops at
// a function already on the path. Colours: kefu's own code warm, the
// libraries cool, the kernel's part (not seen by callgrind) absent.
'use strict';
const fs = require('fs');

const [, , file, out, title = 'instructions per function'] = process.argv;
if (!file || !out) {
  console.error('usage: node bench/flame.js PROFILE OUT.svg [TITLE]');
  process.exit(2);
}
const lines = fs.readFileSync(file, 'utf8').split('\n');

// ---- parse: names are compressed as "(id) name" once, "(id)" after
const names = { fn: new Map(), ob: new Map(), fl: new Map() };
function name(kind, s) {
  const m = /^\((\d+)\)(?:\s+(.*))?$/.exec(s.trim());
  if (!m) return s.trim();
  if (m[2] !== undefined) names[kind].set(m[1], m[2]);
  return names[kind].get(m[1]) || '?';
}
const self = new Map(); // fn -> own instructions
const edges = new Map(); // caller -> Map(callee -> inclusive instructions)
const objOf = new Map(); // fn -> object file
let ob = '', fn = '', cfn = '', cob = '', inCall = false;
for (const l of lines) {
  if (l.startsWith('ob=')) ob = name('ob', l.slice(3));
  else if (l.startsWith('fl=') || l.startsWith('fi=') || l.startsWith('fe=')) name('fl', l.slice(3));
  else if (l.startsWith('fn=')) {
    fn = name('fn', l.slice(3));
    objOf.set(fn, ob); // where it is defined
  } else if (l.startsWith('cob=')) cob = name('ob', l.slice(4));
  else if (l.startsWith('cfi=') || l.startsWith('cfl=')) name('fl', l.slice(4));
  else if (l.startsWith('cfn=')) {
    cfn = name('fn', l.slice(4));
    if (!objOf.has(cfn)) objOf.set(cfn, cob || ob);
  } else if (l.startsWith('calls=')) inCall = true;
  else if (/^([+-]?\d|\*)/.test(l)) {
    const parts = l.trim().split(/\s+/);
    const cost = Number(parts[1] || 0);
    if (inCall) {
      if (!edges.has(fn)) edges.set(fn, new Map());
      const e = edges.get(fn);
      e.set(cfn, (e.get(cfn) || 0) + cost);
      inCall = false;
      cob = ''; // a cob= line names the callee's object for one call only
    } else {
      self.set(fn, (self.get(fn) || 0) + cost);
    }
  }
}

// inclusive cost of a function: its own plus its edges (recursive edges counted once by callgrind)
const called = new Set();
for (const [, e] of edges) for (const c of e.keys()) called.add(c);
const incl = new Map();
for (const f of new Set([...self.keys(), ...edges.keys()])) {
  let s = self.get(f) || 0;
  for (const [c, v] of edges.get(f) || []) if (c !== f) s += v;
  incl.set(f, s);
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const roots = [...incl.keys()].filter((f) => !called.has(f) && incl.get(f) > 0);

// ---- the tree: node = {name, value, children}
const MIN = total * 0.0015;
function grow(f, value, path, depth) {
  const node = { name: f, value, children: [] };
  const inc = incl.get(f) || 1;
  if (depth > 60) return node;
  const scale = Math.min(1, value / inc);
  const kids = [...(edges.get(f) || [])].filter(([c]) => !path.has(c)).sort((a, b) => b[1] - a[1]);
  path.add(f);
  for (const [c, v] of kids) {
    const w = v * scale;
    if (w >= MIN) node.children.push(grow(c, w, path, depth + 1));
  }
  path.delete(f);
  return node;
}
const top = { name: 'all', value: total, children: roots.map((r) => grow(r, incl.get(r), new Set(), 1)).filter((n) => n.value >= MIN) };
top.children.sort((a, b) => b.value - a.value);

// ---- SVG: the root at the bottom, callees above their callers
const W = 1200, H = 16, pad = 10;
let maxDepth = 0;
(function depth(n, d) { maxDepth = Math.max(maxDepth, d); n.children.forEach((c) => depth(c, d + 1)); })(top, 0);
const height = (maxDepth + 1) * H + 60;
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
function short(f) {
  return f.replace(/^.*?:(?=[A-Za-z_])/, '').replace(/'\d+$/, '');
}
function colour(f) {
  const o = objOf.get(f) || '';
  let h = 0;
  for (const ch of f) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const v = h % 40;
  if (/kefu$/.test(o) || f.startsWith('engine/')) return `rgb(${215 + (v % 40)},${90 + v * 2},40)`; // kefu: warm
  if (/libsqlite/.test(o)) return `rgb(70,${130 + v},${200 + (v % 40)})`;
  if (/libjansson/.test(o)) return `rgb(150,${90 + v},${200 + (v % 40)})`;
  if (/libmicrohttpd/.test(o)) return `rgb(60,${170 + v},${150 + v})`;
  return `rgb(${140 + v},${140 + v},${150 + v})`; // libc and the rest
}
const parts = [];
function draw(n, x, d) {
  const w = (n.value / total) * (W - 2 * pad);
  const y = height - 30 - (d + 1) * H;
  const pct = ((n.value / total) * 100).toFixed(2);
  const label = short(n.name);
  const fits = Math.floor((w - 6) / 6.5);
  const text = fits >= 3 ? (label.length > fits ? label.slice(0, fits - 1) + '…' : label) : '';
  parts.push(
    `<g><title>${esc(n.name)} — ${pct}% (${Math.round(n.value).toLocaleString('en')} instructions)</title>` +
      `<rect x="${(pad + x).toFixed(2)}" y="${y}" width="${Math.max(0.5, w - 0.5).toFixed(2)}" height="${H - 1}" fill="${n.name === 'all' ? '#ccc' : colour(n.name)}" rx="1"/>` +
      (text ? `<text x="${(pad + x + 3).toFixed(2)}" y="${y + H - 4}">${esc(text)}</text>` : '') +
      '</g>'
  );
  let cx = x;
  for (const c of n.children) {
    draw(c, cx, d + 1);
    cx += (c.value / total) * (W - 2 * pad);
  }
}
draw(top, 0, 0);
const svg = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>
<text x="${pad}" y="${height - 10}" font-size="10" fill="#555">callgrind instructions (user space; the kernel's share is not counted). Width: share of all ${Math.round(total).toLocaleString('en')} instructions. Warm: kefu; blue: SQLite; violet: jansson; green: libmicrohttpd; grey: libc and others. Hover a box for its name and share.</text>
${parts.join('\n')}
</svg>
`;
fs.writeFileSync(out, svg);
console.log(`${out}: ${parts.length} boxes, ${roots.length} roots, ${total} instructions`);
