/* console.js — kefu's agent console. An agent signs in with an agent
 * token (kept in sessionStorage for the tab), then: the queue, kept current
 * by a parked GET /v1/queue?since=V&wait=25; the open conversation, kept
 * current by a parked GET .../messages?after=N&wait=25; its handoff packet
 * (customer, history across channels, what the bot understood, suggested
 * articles that can be inserted into the reply); claim, reply, transfer,
 * release, resolve; and today's figures from GET /v1/stats with two small
 * SVG charts. Every text from customers, agents or articles is set with
 * textContent; nothing from the server becomes markup. */
(function () {
  'use strict';
  var TOKEN_KEY = 'kefu.console.token', LINKS_KEY = 'kefu.console.links', MINE_KEY = 'kefu.console.mine';
  var $ = function (id) { return document.getElementById(id); };
  var token = sessionStorage.getItem(TOKEN_KEY) || '';
  var links = localStorage.getItem(LINKS_KEY) || '';
  var mine = [];
  try { mine = JSON.parse(sessionStorage.getItem(MINE_KEY) || '[]'); } catch (e) { mine = []; }
  var queue = { version: -1, items: [], at: 0, queues: [] };
  var current = null; /* {id, ctx, lastSeq, follow} */
  var session = 0;    /* bumped on sign-out: stale loops stop */
  var ticking = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function api(method, path, body, signal) {
    var h = { 'Accept': 'application/json', 'Authorization': 'Bearer ' + token };
    if (body) h['Content-Type'] = 'application/json';
    return fetch(path, { method: method, headers: h, body: body ? JSON.stringify(body) : undefined, cache: 'no-store', signal: signal })
      .then(function (r) {
        return r.text().then(function (t) {
          var d = null;
          try { d = t ? JSON.parse(t) : null; } catch (e) { d = null; }
          if (!r.ok) {
            var err = new Error((d && d.error && d.error.message) || ('http ' + r.status));
            err.status = r.status;
            throw err;
          }
          return d;
        });
      });
  }
  function live(ok, text) {
    var l = $('live');
    l.textContent = text;
    l.className = 'live ' + (ok ? 'ok' : 'bad');
  }
  function fmtWait(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  function fmtTime(at) {
    if (typeof at !== 'number') return '';
    var d = new Date(at * 1000);
    return d.toLocaleString();
  }
  function custName(c) {
    if (!c || typeof c !== 'object') return '';
    return (typeof c.name === 'string' && c.name) ? c.name : (typeof c.id === 'string' ? c.id : '');
  }
  function safeUrl(href) {
    try {
      var u = new URL(String(href), location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) { return null; }
  }
  function saveMine() { sessionStorage.setItem(MINE_KEY, JSON.stringify(mine)); }

  /* ---- sign in / out ---- */
  $('signin').addEventListener('submit', function (e) {
    e.preventDefault();
    var tok = $('token').value.trim();
    var lk = $('links').value.trim();
    $('signin-error').textContent = '';
    token = tok;
    api('GET', '/v1/queue').then(function () {
      sessionStorage.setItem(TOKEN_KEY, tok);
      links = lk;
      if (lk) localStorage.setItem(LINKS_KEY, lk); else localStorage.removeItem(LINKS_KEY);
      $('token').value = '';
      start();
    }).catch(function (err) {
      token = '';
      $('signin-error').textContent = err.status === 401 ? 'That agent token is not known.' : 'Cannot reach kefu: ' + err.message;
    });
  });
  /* presence: what the customers' "agents are busy / offline" notice counts */
  function sendPresence() {
    var st = $('presence').value;
    api('POST', '/v1/agent/presence', { status: st }).catch(function (err) {
      live(false, 'status not saved: ' + err.message);
    });
  }
  $('presence').addEventListener('change', sendPresence);
  $('signout').addEventListener('click', function () {
    if (token) api('POST', '/v1/agent/presence', { status: 'offline' }).catch(function () {});
    session++;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(MINE_KEY);
    token = ''; mine = []; current = null;
    $('app').hidden = true;
    $('signin').hidden = false;
    $('token').focus();
  });

  function start() {
    session++;
    $('signin').hidden = true;
    $('app').hidden = false;
    $('links').value = links;
    var s = session;
    sendPresence();
    queueLoop(s);
    statsLoop(s);
    renderMine();
    if (!ticking) ticking = setInterval(tick, 1000);
  }

  /* ---- the queue ---- */
  function queueLoop(s) {
    if (s !== session) return;
    var path = queue.version >= 0 ? '/v1/queue?since=' + queue.version + '&wait=25' : '/v1/queue';
    api('GET', path).then(function (r) {
      if (s !== session) return;
      live(true, 'live');
      if (typeof r.agent === 'string') $('me').textContent = 'Signed in as ' + r.agent;
      renderRedlines(Array.isArray(r.redlines) ? r.redlines : []);
      if (r.version !== queue.version) {
        var first = queue.version < 0;
        queue.version = r.version;
        queue.items = Array.isArray(r.conversations) ? r.conversations : [];
        queue.queues = Array.isArray(r.queues) ? r.queues : [];
        queue.at = Date.now();
        renderQueue();
        if (!first) loadStats();
        if (current && !current.follow) openConv(current.id, true);
      }
      queueLoop(s);
    }).catch(function (err) {
      if (s !== session) return;
      if (err.status === 401) { $('signout').click(); return; }
      live(false, 'reconnecting…');
      setTimeout(function () { queueLoop(s); }, 2000);
    });
  }
  /* The banner: every red line crossed now (GET /v1/queue's redlines), as text. */
  var METRIC_WORDS = {
    queue_wait: 'wait for an agent', agent_first_response: 'agents\' first response', bot_response: 'bot response time',
    automation_rate: 'automation', handoff_rate: 'handoff rate', unanswered_share: 'unanswered share', csat: 'satisfaction'
  };
  function fmtLine(b) {
    var time = b.metric === 'queue_wait' || b.metric === 'agent_first_response' || b.metric === 'bot_response';
    var v = function (x) { return time ? fmtWait(x) : b.metric === 'csat' ? Number(x).toFixed(2) : pct(x); };
    var g = b.group && typeof b.group === 'object' ? Object.keys(b.group).map(function (k) { return k + ' ' + b.group[k]; }).join(', ') : '';
    return 'Red line "' + b.name + '" crossed' + (g ? ' (' + g + ')' : '') + ': ' + (METRIC_WORDS[b.metric] || b.metric) + ' ' +
      v(b.value) + ', ' + (b.op === 'min' ? 'at least ' : 'at most ') + v(b.threshold) + ' over ' + fmtWait(b.window_s || 0) +
      ', since ' + fmtTime(b.since);
  }
  function renderRedlines(list) {
    var box = $('redlines');
    box.textContent = '';
    list.forEach(function (b) {
      if (!b || typeof b.name !== 'string') return;
      var p = el('p', 'redline', fmtLine(b));
      p.setAttribute('data-name', b.name);
      box.appendChild(p);
    });
  }
  function renderQueue() {
    var ol = $('queue');
    ol.textContent = '';
    $('queue-count').textContent = String(queue.items.length);
    $('queue-empty').hidden = queue.items.length > 0;
    var names = {};
    queue.items.forEach(function (c) {
      if (!c || typeof c.id !== 'string') return;
      if (typeof c.queue === 'string') names[c.queue] = 1;
      var li = el('li');
      var b = el('button', 'item');
      b.type = 'button';
      b.setAttribute('data-id', c.id);
      if (current && current.id === c.id) b.setAttribute('aria-current', 'true');
      var row = el('span', 'row');
      row.appendChild(el('span', 'name', custName(c.customer)));
      var pr = String(c.priority || 'normal');
      row.appendChild(el('span', 'prio ' + pr.replace(/[^a-z]/g, ''), pr));
      if (c.escalated === true) row.appendChild(el('span', 'escalated', 'escalated'));
      b.appendChild(row);
      var row2 = el('span', 'row');
      var w = el('span', 'wait', fmtWait(c.waiting_s || 0));
      w.setAttribute('data-wait', String(c.waiting_s || 0));
      row2.appendChild(w);
      row2.appendChild(el('span', 'meta', [c.queue, c.reason, c.channel].filter(function (x) { return typeof x === 'string' && x; }).join(' · ')));
      b.appendChild(row2);
      b.appendChild(el('span', 'first', typeof c.first_message === 'string' ? c.first_message : ''));
      b.setAttribute('aria-label', custName(c.customer) + ', ' + pr + ' priority' + (c.escalated === true ? ', escalated' : '') + ', waiting ' + fmtWait(c.waiting_s || 0) + ', ' + (c.reason || '') + ': ' + (c.first_message || ''));
      b.addEventListener('click', function () { openConv(c.id); });
      li.appendChild(b);
      ol.appendChild(li);
    });
    var dl = $('queue-names');
    dl.textContent = '';
    queue.queues.concat(Object.keys(names)).forEach(function (n) {
      if (typeof n !== 'string' || n === '*' || dl.querySelector('option[value="' + CSS.escape(n) + '"]')) return;
      var o = el('option'); o.value = n; dl.appendChild(o);
    });
  }
  function tick() {
    var since = (Date.now() - queue.at) / 1000;
    var ws = document.querySelectorAll('#queue .wait');
    for (var i = 0; i < ws.length; i++) ws[i].textContent = fmtWait(Number(ws[i].getAttribute('data-wait')) + since);
  }
  function renderMine() {
    var ol = $('mine');
    ol.textContent = '';
    mine.forEach(function (m) {
      var li = el('li');
      var b = el('button', 'item');
      b.type = 'button';
      b.setAttribute('data-id', m.id);
      if (current && current.id === m.id) b.setAttribute('aria-current', 'true');
      b.appendChild(el('span', 'name', m.name || m.id));
      b.addEventListener('click', function () { openConv(m.id); });
      li.appendChild(b);
      ol.appendChild(li);
    });
  }

  /* ---- one conversation ---- */
  function openConv(id, quiet) {
    return api('GET', '/v1/conversations/' + encodeURIComponent(id)).then(function (ctx) {
      var same = current && current.id === id;
      if (!same && current && current.ctl) current.ctl.abort();
      if (!same) current = { id: id, lastSeq: 0, follow: false };
      current.ctx = ctx;
      showConv(ctx, !same);
      var mineNow = ctx.conversation && ctx.conversation.state === 'agent' && ctx.conversation.agent;
      if (ctx.conversation && ctx.conversation.state !== 'agent') dropMine(id);
      if (!current.follow && mineNow) follow(current);
      renderQueue(); renderMine();
    }).catch(function (err) {
      if (!quiet) $('conv-error').textContent = err.message;
      if (err.status === 403 || err.status === 404) dropMine(id);
    });
  }
  function dropMine(id) {
    var n = mine.length;
    mine = mine.filter(function (m) { return m.id !== id; });
    if (mine.length !== n) { saveMine(); renderMine(); }
  }
  function addMine(id, name) {
    if (!mine.some(function (m) { return m.id === id; })) { mine.push({ id: id, name: name }); saveMine(); }
    renderMine();
  }
  function who(from) {
    return { customer: 'Customer', bot: 'Bot', agent: 'Agent', system: 'System' }[from] || String(from || '');
  }
  function msgEl(m) {
    var from = ['customer', 'bot', 'agent', 'system'].indexOf(m.from) >= 0 ? m.from : 'system';
    var d = el('div', 'msg ' + from);
    d.setAttribute('data-seq', String(m.seq));
    var w = el('span', 'who', who(from));
    var tag = [m.source, m.intent, typeof m.confidence === 'number' ? m.confidence.toFixed(2) : null]
      .filter(function (x) { return typeof x === 'string' && x && x !== 'agent'; }).join(' · ');
    if (tag && from !== 'system') w.appendChild(el('span', 'tag', tag));
    d.appendChild(w);
    d.appendChild(el('span', 'text', typeof m.text === 'string' ? m.text : ''));
    return d;
  }
  function addMessages(list) {
    var box = $('transcript');
    (list || []).forEach(function (m) {
      if (!m || typeof m.seq !== 'number' || m.seq <= current.lastSeq) return;
      current.lastSeq = m.seq;
      box.appendChild(msgEl(m));
    });
    box.scrollTop = box.scrollHeight;
  }
  function showConv(ctx, fresh) {
    var c = ctx.conversation || {};
    $('conv-empty').hidden = true;
    $('conv-view').hidden = false;
    $('packet').hidden = false;
    $('conv-error').textContent = '';
    $('conv-title').textContent = custName(ctx.customer) || c.id || '';
    $('conv-sub').textContent = [c.state, c.queue, c.priority, c.channel, c.locale, c.agent ? 'with ' + c.agent : '']
      .filter(function (x) { return typeof x === 'string' && x; }).join(' · ');
    var held = c.state === 'agent';
    $('claim').hidden = held || c.state !== 'queued';
    $('transfer').disabled = !held; $('release').disabled = !held; $('resolve').disabled = !held;
    $('transfer-to').disabled = !held;
    $('reply-text').disabled = !held; $('send').disabled = !held;
    if (fresh) { $('transcript').textContent = ''; current.lastSeq = 0; }
    addMessages(ctx.transcript);
    renderPacket(ctx);
  }
  function kv(dl, pairs) {
    dl.textContent = '';
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === '') return;
      dl.appendChild(el('dt', null, p[0]));
      dl.appendChild(el('dd', null, p[1]));
    });
  }
  function renderPacket(ctx) {
    var cu = ctx.customer || {};
    $('p-reason').textContent = typeof ctx.reason === 'string' && ctx.reason ? ctx.reason : '—';
    kv($('p-customer'), [['name', cu.name], ['id', cu.id], ['tier', cu.tier],
      ['first seen', fmtTime(cu.first_seen)], ['last seen', fmtTime(cu.last_seen)]]);
    var ul = $('p-intents');
    ul.textContent = '';
    var u = ctx.understood || {};
    (Array.isArray(u.intents) ? u.intents : []).forEach(function (i) {
      var li = el('li');
      var conf = typeof i.confidence === 'number' ? i.confidence : 0;
      li.appendChild(el('span', null, String(i.intent || '') + ' — ' + conf.toFixed(2) + (i.source ? ' (' + i.source + ')' : '')));
      var bar = el('div', 'bar-in'); var fill = el('i');
      fill.style.width = Math.round(Math.max(0, Math.min(1, conf)) * 100) + '%';
      bar.appendChild(fill); li.appendChild(bar);
      ul.appendChild(li);
    });
    if (!ul.firstChild) ul.appendChild(el('li', 'empty', 'nothing recognised'));
    var slots = u.slots && typeof u.slots === 'object' ? u.slots : {};
    kv($('p-slots'), Object.keys(slots).map(function (k) { return [k, typeof slots[k] === 'string' ? slots[k] : JSON.stringify(slots[k])]; }));
    var al = $('p-articles');
    al.textContent = '';
    (Array.isArray(ctx.articles) ? ctx.articles : []).forEach(function (a) {
      if (!a || typeof a.id !== 'string') return;
      var li = el('li');
      var title = typeof a.title === 'string' && a.title ? a.title : a.id;
      li.appendChild(el('span', null, title));
      var b = el('button', null, 'Insert');
      b.type = 'button';
      b.setAttribute('aria-label', 'Insert article into the reply: ' + title);
      b.addEventListener('click', function () { insertArticle(a.id, title); });
      li.appendChild(b);
      al.appendChild(li);
    });
    if (!al.firstChild) al.appendChild(el('li', 'empty', 'none'));
    var hl = $('p-history');
    hl.textContent = '';
    (Array.isArray(ctx.history) ? ctx.history : []).forEach(function (h) {
      var li = el('li');
      li.appendChild(el('div', null, [h.channel, h.state, fmtTime(h.created_at)].filter(Boolean).join(' · ')));
      if (h.reason) li.appendChild(el('div', 'meta', 'handed over: ' + h.reason));
      if (h.first_message) li.appendChild(el('div', 'first', h.first_message));
      hl.appendChild(li);
    });
    if (!hl.firstChild) hl.appendChild(el('li', 'empty', 'first conversation'));
  }
  function insertArticle(id, title) {
    var ta = $('reply-text');
    if (ta.disabled) return;
    var url = links ? safeUrl(links.split('{id}').join(encodeURIComponent(id))) : null;
    var text = url ? title + ': ' + url : title;
    var at = ta.selectionStart || ta.value.length;
    var before = ta.value.slice(0, at), after = ta.value.slice(at);
    var sep = before && !/\s$/.test(before) ? '\n' : '';
    ta.value = before + sep + text + after;
    ta.focus();
    ta.selectionStart = ta.selectionEnd = (before + sep + text).length;
  }
  /* Follows the open conversation with parked reads until it changes. */
  function follow(cur) {
    cur.follow = true;
    var s = session;
    (function loop(backoff) {
      if (s !== session || current !== cur) return;
      cur.ctl = new AbortController();
      api('GET', '/v1/conversations/' + encodeURIComponent(cur.id) + '/messages?after=' + cur.lastSeq + '&wait=25', null, cur.ctl.signal)
        .then(function (r) {
          if (current !== cur) return;
          addMessages(r.messages);
          if (r.state !== (cur.ctx.conversation || {}).state) { cur.follow = false; openConv(cur.id, true); return; }
          loop(1000);
        }).catch(function (err) {
          if (current !== cur || (err && err.name === 'AbortError')) return;
          if (err.status === 403 || err.status === 404) { cur.follow = false; openConv(cur.id, true); return; }
          setTimeout(function () { loop(Math.min(backoff * 2, 15000)); }, backoff);
        });
    })(1000);
  }
  function act(path, body, then) {
    var id = current.id;
    $('conv-error').textContent = '';
    return api('POST', '/v1/conversations/' + encodeURIComponent(id) + path, body || undefined).then(function (r) {
      if (then) then(r);
      if (current && current.id === id) { current.follow = false; if (current.ctl) current.ctl.abort(); return openConv(id, true); }
    }).catch(function (err) { $('conv-error').textContent = err.message; });
  }
  $('claim').addEventListener('click', function () {
    var name = custName(current.ctx && current.ctx.customer);
    act('/claim', null, function () { addMine(current.id, name); }).then(function () { $('reply-text').focus(); });
  });
  $('release').addEventListener('click', function () { var id = current.id; act('/release', null, function () { dropMine(id); }); });
  $('resolve').addEventListener('click', function () { var id = current.id; act('/resolve', null, function () { dropMine(id); loadStats(); }); });
  $('transfer').addEventListener('click', function () {
    var q = $('transfer-to').value.trim();
    if (!q) { $('conv-error').textContent = 'Name the queue to transfer to.'; $('transfer-to').focus(); return; }
    var id = current.id;
    act('/transfer', { queue: q }, function () { dropMine(id); $('transfer-to').value = ''; });
  });
  $('reply').addEventListener('submit', function (e) {
    e.preventDefault();
    var ta = $('reply-text');
    var text = ta.value.trim();
    if (!text || !current) return;
    $('send').disabled = true;
    var cid = 'c-' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    api('POST', '/v1/conversations/' + encodeURIComponent(current.id) + '/agent-messages', { text: text, client_id: cid })
      .then(function () { ta.value = ''; $('conv-error').textContent = ''; })
      .catch(function (err) { $('conv-error').textContent = 'Not sent: ' + err.message; })
      .then(function () { $('send').disabled = false; ta.focus(); });
  });
  $('reply-text').addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $('reply').requestSubmit(); }
  });

  /* ---- today's figures ---- */
  function statsLoop(s) {
    if (s !== session) return;
    loadStats();
    setTimeout(function () { statsLoop(s); }, 30000);
  }
  function loadStats() {
    api('GET', '/v1/stats').then(renderStats).catch(function () {});
  }
  function pct(x) { return (typeof x === 'number' ? Math.round(x * 100) : 0) + '%'; }
  function renderStats(st) {
    var r = st.ratings || {}, w = st.wait_s || {}, fr = st.first_response_s || {};
    var figs = [
      ['Automation rate', pct(st.automation_rate)],
      ['Handoffs', st.handoffs || 0],
      ['Conversations', st.conversations || 0],
      ['Average wait', w.claims ? fmtWait(w.avg) : '—'],
      ['Longest wait', w.claims ? fmtWait(w.max) : '—'],
      ['First response', fr.count ? fmtWait(Math.round(fr.avg)) : '—'],
      ['Rating', r.count ? (r.avg || 0).toFixed(1) + ' / 5 (' + r.count + ')' : '—']
    ];
    var dl = $('figures');
    dl.textContent = '';
    figs.forEach(function (f) {
      var d = el('div');
      d.appendChild(el('dt', null, f[0]));
      d.appendChild(el('dd', null, f[1]));
      dl.appendChild(d);
    });
    renderExperiments(Array.isArray(st.experiments) ? st.experiments : []);
    renderKpi(st.kpi && typeof st.kpi === 'object' ? st.kpi : {});
    var hours = Array.isArray(st.hours) ? st.hours : [];
    barChart($('chart-hours'), hours.map(function (h) {
      var at = new Date(h.at * 1000);
      return { label: String(at.getHours()), a: h.answered || 0, b: Math.max(0, (h.messages || 0) - (h.answered || 0)) };
    }), 'Customer messages per hour');
    var vals = Array.isArray(r.values) ? r.values : [0, 0, 0, 0, 0];
    barChart($('chart-ratings'), vals.map(function (n, i) { return { label: String(i + 1), a: n || 0, b: 0 }; }), 'Ratings by value');
  }
  /* The KPI table: one row per channel, a cell over its red line marked, the lines in the titles. */
  function renderKpi(k) {
    var body = $('kpi').querySelector('tbody');
    body.textContent = '';
    var lines = k.redlines || {};
    var lineText = function (l, f) { return l && typeof l === 'object' ? 'red line: ' + l.op + ' ' + f(l.threshold) : 'no red line'; };
    var num = function (x, f) { return typeof x === 'number' ? f(x) : '—'; };
    var two = function (x) { return x.toFixed(2); };
    var secs = function (x) { return fmtWait(Math.round(x)); };
    (Array.isArray(k.channels) ? k.channels : []).forEach(function (r) {
      if (!r || typeof r.channel !== 'string') return;
      var tr = el('tr');
      tr.setAttribute('data-channel', r.channel);
      var b = Array.isArray(r.breached) ? r.breached : [];
      var th = el('th', null, r.channel);
      th.setAttribute('scope', 'row');
      tr.appendChild(th);
      [['automation', pct, lines.automation], ['first_contact_resolution', pct, null], ['first_response_s', secs, lines.first_response],
        ['handling_s', secs, null], ['csat', two, lines.csat]].forEach(function (c) {
        var td = el('td', b.indexOf(c[0]) >= 0 ? 'over' : null, num(r[c[0]], c[1]));
        td.setAttribute('data-kpi', c[0]);
        if (c[2] !== null) td.title = lineText(c[2], c[0] === 'csat' ? two : c[0] === 'automation' ? pct : secs);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  /* The running A/B tests: each variant's containment and answers, and the test against the control. */
  function renderExperiments(list) {
    var ul = $('experiments');
    ul.textContent = '';
    list.filter(function (e) { return e && e.running === true && typeof e.intent === 'string'; }).forEach(function (e) {
      var li = el('li');
      li.setAttribute('data-intent', e.intent);
      li.appendChild(el('span', 'name', e.intent));
      var arms = (Array.isArray(e.variants) ? e.variants : []).filter(function (v) { return v && v.running === true; });
      li.appendChild(el('span', 'arms', arms.map(function (v) {
        return v.name + ' ' + pct(v.containment) + ' of ' + (v.answers || 0) + (typeof v.csat === 'number' ? ', ' + v.csat.toFixed(1) + '/5' : '');
      }).join(' · ')));
      var tests = Array.isArray(e.tests) ? e.tests : [];
      li.appendChild(el('span', 'test', tests.map(function (t) {
        var p = typeof t.p_value === 'number' ? t.p_value.toFixed(3) : '—';
        return t.variant + ' vs ' + e.control + ': p ' + p + (t.significant ? ' (significant)' : t.needed > 0 ? ', ' + t.needed + ' more each' : '');
      }).join('; ')));
      ul.appendChild(li);
    });
    $('experiments-none').hidden = ul.childNodes.length > 0;
  }
  /* Draws stacked bars (a at the bottom, b above) into box as SVG elements. */
  function barChart(box, rows, title) {
    var ns = 'http://www.w3.org/2000/svg';
    var W = 280, H = 90, pad = 14;
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + (H + pad));
    svg.setAttribute('role', 'img');
    var desc = rows.map(function (r) { return r.label + ': ' + (r.a + r.b); }).join(', ');
    svg.setAttribute('aria-label', title + (desc ? ' — ' + desc : ''));
    var max = 1;
    rows.forEach(function (r) { max = Math.max(max, r.a + r.b); });
    var n = Math.max(rows.length, 1), bw = W / n;
    function rect(x, y, w, h, fill) {
      var e = document.createElementNS(ns, 'rect');
      e.setAttribute('x', x); e.setAttribute('y', y); e.setAttribute('width', w); e.setAttribute('height', h);
      e.setAttribute('fill', fill);
      svg.appendChild(e);
    }
    var base = document.createElementNS(ns, 'line');
    base.setAttribute('x1', 0); base.setAttribute('x2', W); base.setAttribute('y1', H); base.setAttribute('y2', H);
    base.setAttribute('stroke', '#ced4da');
    svg.appendChild(base);
    rows.forEach(function (r, i) {
      var ha = (r.a / max) * (H - 4), hb = (r.b / max) * (H - 4);
      var x = i * bw + bw * 0.15, w = bw * 0.7;
      if (ha > 0) rect(x, H - ha, w, ha, '#2f9e44');
      if (hb > 0) rect(x, H - ha - hb, w, hb, '#f76707');
      if (n <= 12 || i % 3 === 0) {
        var tx = document.createElementNS(ns, 'text');
        tx.setAttribute('x', i * bw + bw / 2); tx.setAttribute('y', H + 11);
        tx.setAttribute('font-size', '9'); tx.setAttribute('text-anchor', 'middle'); tx.setAttribute('fill', '#868e96');
        tx.textContent = r.label;
        svg.appendChild(tx);
      }
    });
    box.textContent = '';
    box.appendChild(svg);
  }

  if (token) {
    api('GET', '/v1/queue').then(start).catch(function () { sessionStorage.removeItem(TOKEN_KEY); token = ''; });
  }
  $('links').value = links;
})();
