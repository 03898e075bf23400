/* widget.js — kefu's chat widget, embedded with one script tag:
 *
 *   <script src="https://HOST/widget.js" data-kefu-server="https://HOST" data-locale="zh" defer></script>
 *
 * It adds a launcher button and a chat panel inside a shadow root, so the
 * host page's styles do not reach it and its styles do not leak out. It
 * speaks the customer side of HTTP API v1 (docs/api.md): it starts a
 * conversation, keeps its token in localStorage across reloads, sends
 * messages, and follows agent replies live over Server-Sent Events, with
 * long-polling as the fallback, reconnecting after a network drop.
 * Every text that comes from a person or the server is set with
 * textContent; links are made only from http(s) URLs. See docs/widget.md. */
(function () {
  'use strict';
  if (window.KefuWidget) return;

  var script = document.currentScript;
  function attr(name, dflt) {
    var v = script && script.getAttribute('data-' + name);
    return v === null || v === undefined || v === '' ? dflt : v;
  }

  var scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var cfg = {
    server: attr('kefu-server', scriptOrigin).replace(/\/+$/, ''),
    locale: attr('locale', /^zh/i.test(navigator.language || '') ? 'zh' : 'en').toLowerCase(),
    channel: attr('channel', 'web'),
    customerId: attr('customer-id', ''),
    customerName: attr('customer-name', ''),
    customerTier: attr('customer-tier', ''),
    title: attr('title', ''),
    articles: attr('articles-url', ''),
    position: attr('position', 'right') === 'left' ? 'left' : 'right',
    color: attr('color', '#d9480f'),
    open: attr('open', 'false') === 'true',
    transport: attr('transport', 'sse') /* sse | poll */
  };
  if (cfg.locale === 'zh-tw' || cfg.locale === 'zh-hk') cfg.locale = 'zh-hant';
  if (!/^(en|zh|zh-hant)$/.test(cfg.locale)) cfg.locale = /^zh/.test(cfg.locale) ? 'zh' : 'en';

  /* ---- UI strings ---- */
  var STRINGS = {
    en: {
      title: 'Customer service', open: 'Open chat with customer service', close: 'Close chat',
      log: 'Conversation', input: 'Your message', placeholder: 'Type your question…', send: 'Send',
      typing: 'The assistant is typing…', you: 'You', bot: 'Assistant', agent: 'Agent', system: 'Notice',
      queue: 'You are number {pos} in the queue. Expected wait: {wait}.',
      waitSoon: 'less than a minute', waitMin: 'about {n} min',
      withAgent: 'An agent is with you now.', offline: 'Connection lost. Reconnecting…',
      failed: 'Not sent.', retry: 'Retry', error: 'Something went wrong. Please try again.',
      tooFast: 'You are sending messages too quickly. Please wait a moment.',
      rate: 'How satisfied were you with this conversation?', star: '{n} out of 5',
      comment: 'Anything to add? (optional)', submit: 'Send rating', thanks: 'Thank you for your feedback!',
      articles: 'Related articles', quick: 'Suggested replies', unread: 'new messages'
    },
    zh: {
      title: '在线客服', open: '打开在线客服对话', close: '关闭对话',
      log: '对话记录', input: '您的消息', placeholder: '请输入您的问题…', send: '发送',
      typing: '客服正在输入…', you: '您', bot: '智能助手', agent: '人工客服', system: '系统消息',
      queue: '您当前排在第 {pos} 位，预计等待{wait}。',
      waitSoon: '不到 1 分钟', waitMin: '约 {n} 分钟',
      withAgent: '人工客服已接入，正在为您服务。', offline: '网络连接已断开，正在重新连接…',
      failed: '发送失败。', retry: '重试', error: '出了点问题，请稍后再试。',
      tooFast: '发送太频繁了，请稍等片刻。',
      rate: '您对本次服务满意吗？', star: '{n} 分（满分 5 分）',
      comment: '还有什么想告诉我们的吗？（选填）', submit: '提交评价', thanks: '感谢您的评价！',
      articles: '相关文章', quick: '推荐问题', unread: '条新消息'
    },
    'zh-hant': {
      title: '線上客服', open: '開啟線上客服對話', close: '關閉對話',
      log: '對話記錄', input: '您的訊息', placeholder: '請輸入您的問題…', send: '傳送',
      typing: '客服正在輸入…', you: '您', bot: '智慧助理', agent: '真人客服', system: '系統訊息',
      queue: '您目前排在第 {pos} 位，預計等候{wait}。',
      waitSoon: '不到 1 分鐘', waitMin: '約 {n} 分鐘',
      withAgent: '真人客服已接入，正在為您服務。', offline: '網路連線中斷，正在重新連線…',
      failed: '傳送失敗。', retry: '重試', error: '發生問題，請稍後再試。',
      tooFast: '傳送太頻繁了，請稍候片刻。',
      rate: '您對本次服務滿意嗎？', star: '{n} 分（滿分 5 分）',
      comment: '還有什麼想告訴我們的嗎？（選填）', submit: '送出評價', thanks: '感謝您的評價！',
      articles: '相關文章', quick: '推薦問題', unread: '則新訊息'
    }
  };
  var S = STRINGS[cfg.locale];
  function t(key, vars) {
    var s = S[key] || STRINGS.en[key] || key;
    if (vars) Object.keys(vars).forEach(function (k) { s = s.split('{' + k + '}').join(String(vars[k])); });
    return s;
  }

  /* ---- storage (localStorage, or memory when the browser refuses it) ---- */
  var memory = {};
  var store = {
    get: function (k) {
      try { var v = window.localStorage.getItem(k); return v ? JSON.parse(v) : null; }
      catch (e) { return memory[k] || null; }
    },
    set: function (k, v) {
      try { window.localStorage.setItem(k, JSON.stringify(v)); } catch (e) { memory[k] = v; }
    },
    del: function (k) {
      try { window.localStorage.removeItem(k); } catch (e) { delete memory[k]; }
    }
  };
  var KEY = 'kefu.v1:' + cfg.server + ':' + cfg.channel;
  var CUSTOMER_KEY = 'kefu.v1.customer:' + cfg.server;

  function randomHex(n) {
    var a = new Uint8Array(n);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }
  function customerId() {
    if (cfg.customerId) return cfg.customerId;
    var id = store.get(CUSTOMER_KEY);
    if (!id) { id = 'web-' + randomHex(8); store.set(CUSTOMER_KEY, id); }
    return id;
  }

  /* ---- safe links ---- */
  /* Returns an absolute http(s) URL for href, or null (javascript:, data:, ...). */
  function safeUrl(href) {
    try {
      var u = new URL(String(href), location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) { return null; }
  }
  function articleUrl(id) {
    if (!cfg.articles) return null;
    return safeUrl(cfg.articles.split('{id}').join(encodeURIComponent(id)));
  }

  /* ---- DOM helpers: text only, never markup from data ---- */
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  /* Appends text to parent, turning http(s) URLs into links (built as elements). */
  function appendLinkified(parent, text) {
    var re = /\bhttps?:\/\/[^\s<>"'，。！？）)]+/g, last = 0, m;
    text = String(text);
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      var url = safeUrl(m[0]);
      if (url) {
        var a = el('a', 'link', m[0]);
        a.href = url; a.target = '_blank'; a.rel = 'noopener noreferrer nofollow';
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(m[0]));
      }
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  var CSS = [
    ':host{all:initial;position:fixed;z-index:2147483000;bottom:20px;' + cfg.position + ':20px;',
    'font:14px/1.45 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;color:#1f2328}',
    '*{box-sizing:border-box}',
    '.launcher{width:56px;height:56px;border-radius:50%;border:0;background:var(--accent);color:#fff;cursor:pointer;',
    'box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;position:relative}',
    '.launcher svg{width:28px;height:28px;fill:currentColor}',
    '.launcher:focus-visible,button:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid #1c7ed6;outline-offset:2px}',
    '.badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;background:#1c7ed6;color:#fff;font-size:12px;line-height:20px;padding:0 5px}',
    '.panel{position:absolute;bottom:68px;' + cfg.position + ':0;width:370px;height:560px;max-height:calc(100vh - 100px);',
    'background:#fff;border-radius:14px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}',
    '.panel[hidden]{display:none}',
    'header{background:var(--accent);color:#fff;padding:12px 14px;display:flex;align-items:center;gap:8px}',
    'header h2{font-size:16px;margin:0;flex:1;font-weight:600}',
    '.close{background:transparent;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer;width:32px;height:32px;border-radius:6px}',
    '.status{padding:8px 14px;font-size:13px;background:#fff4e6;color:#7a3a06;border-bottom:1px solid #ffd8a8}',
    '.status.offline{background:#fff5f5;color:#a61e1e;border-color:#ffc9c9}',
    '.status.agent{background:#ebfbee;color:#1b5e20;border-color:#b2f2bb}',
    '.status[hidden]{display:none}',
    '.log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f8f9fa}',
    '.msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere}',
    '.msg .who{display:block;font-size:11px;font-weight:600;opacity:.75;margin-bottom:2px}',
    '.customer{align-self:flex-end;background:var(--accent);color:#fff;border-bottom-right-radius:4px}',
    '.customer .who{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}',
    '.bot{align-self:flex-start;background:#fff;border:1px solid #dee2e6;border-bottom-left-radius:4px}',
    '.agent{align-self:flex-start;background:#e7f5ff;border:1px solid #a5d8ff;border-bottom-left-radius:4px}',
    '.system{align-self:center;background:transparent;color:#495057;font-size:12px;text-align:center;max-width:95%}',
    '.system .who{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}',
    '.msg.pending{opacity:.7}',
    '.msg.failed{background:#fff5f5;color:#a61e1e;border:1px solid #ffc9c9}',
    '.msg .retry{margin-left:6px;background:#fff;border:1px solid #a61e1e;color:#a61e1e;border-radius:6px;cursor:pointer;font:inherit;font-size:12px}',
    '.msg a,.articles a{color:#1864ab}',
    '.customer a{color:#fff}',
    '.articles{align-self:flex-start;max-width:85%;font-size:13px;margin:-2px 0 0 0;padding:0;list-style:none}',
    '.articles li{margin:2px 0}',
    '.articles .label{font-size:11px;color:#495057}',
    '.quick{display:flex;flex-wrap:wrap;gap:6px;align-self:flex-start}',
    '.quick button{border:1px solid var(--accent);background:#fff;color:var(--accent);border-radius:16px;padding:5px 11px;cursor:pointer;font:inherit;font-size:13px}',
    '.quick button:hover{background:#fff4e6}',
    '.typing{align-self:flex-start;color:#495057;font-size:12px;display:flex;align-items:center;gap:6px}',
    '.typing[hidden]{display:none}',
    '.dots{display:inline-flex;gap:3px}.dots i{width:6px;height:6px;border-radius:50%;background:#868e96;animation:b 1.2s infinite}',
    '.dots i:nth-child(2){animation-delay:.2s}.dots i:nth-child(3){animation-delay:.4s}',
    '@keyframes b{0%,60%,100%{opacity:.3}30%{opacity:1}}',
    '@media (prefers-reduced-motion:reduce){.dots i{animation:none}}',
    '.rating{align-self:stretch;background:#fff;border:1px solid #dee2e6;border-radius:12px;padding:10px}',
    '.rating p{margin:0 0 6px}',
    '.stars{display:flex;gap:4px;margin-bottom:6px}',
    '.stars button{font-size:24px;line-height:1;width:40px;height:40px;border:1px solid #dee2e6;border-radius:8px;background:#fff;cursor:pointer;color:#adb5bd}',
    '.stars button[aria-checked="true"],.stars button.lit{color:#f08c00;border-color:#f08c00}',
    '.rating textarea{width:100%;min-height:40px;font:inherit;font-size:13px;border:1px solid #ced4da;border-radius:8px;padding:6px;resize:vertical}',
    '.rating .submit{margin-top:6px;background:var(--accent);color:#fff;border:0;border-radius:8px;padding:6px 12px;cursor:pointer;font:inherit}',
    '.rating .submit:disabled{opacity:.5;cursor:default}',
    'form{display:flex;gap:8px;padding:10px;border-top:1px solid #dee2e6;background:#fff}',
    'form textarea{flex:1;resize:none;height:40px;max-height:120px;font:inherit;border:1px solid #ced4da;border-radius:10px;padding:9px 10px}',
    'form button{background:var(--accent);color:#fff;border:0;border-radius:10px;padding:0 14px;cursor:pointer;font:inherit;font-weight:600}',
    'form button:disabled{opacity:.5;cursor:default}',
    '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}',
    '@media (max-width:480px){:host{bottom:12px;' + cfg.position + ':12px}',
    '.panel{position:fixed;inset:0;width:auto;height:auto;max-height:none;border-radius:0;bottom:0}',
    ':host([data-open]) .launcher{display:none}}'
  ].join('\n');

  var ICON_CHAT = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z';
  var ICON_CLOSE = 'M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7l-1.4-1.4L9.2 12 2.9 5.7l1.4-1.4 6.3 6.3 6.3-6.3z';

  function svgIcon(d) {
    var ns = 'http://www.w3.org/2000/svg';
    var s = document.createElementNS(ns, 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    s.setAttribute('focusable', 'false');
    var p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    s.appendChild(p);
    return s;
  }

  /* ---- the widget ---- */
  var host = document.createElement('div');
  host.id = 'kefu-widget';
  host.setAttribute('data-kefu', '');
  var root = host.attachShadow({ mode: 'open' });
  host.style.setProperty('--accent', /^#[0-9a-fA-F]{3,8}$/.test(cfg.color) ? cfg.color : '#d9480f');
  var styleEl = document.createElement('style');
  styleEl.textContent = CSS;
  root.appendChild(styleEl);

  var ui = {};
  ui.launcher = el('button', 'launcher');
  ui.launcher.type = 'button';
  ui.launcher.setAttribute('aria-label', t('open'));
  ui.launcher.setAttribute('aria-expanded', 'false');
  ui.launcher.setAttribute('aria-controls', 'kefu-panel');
  ui.launcher.appendChild(svgIcon(ICON_CHAT));
  ui.badge = el('span', 'badge');
  ui.badge.hidden = true;
  ui.launcher.appendChild(ui.badge);

  ui.panel = el('section', 'panel');
  ui.panel.id = 'kefu-panel';
  ui.panel.hidden = true;
  ui.panel.setAttribute('role', 'dialog');
  ui.panel.setAttribute('aria-labelledby', 'kefu-title');
  var header = el('header');
  ui.title = el('h2', null, cfg.title || t('title'));
  ui.title.id = 'kefu-title';
  ui.close = el('button', 'close');
  ui.close.type = 'button';
  ui.close.setAttribute('aria-label', t('close'));
  ui.close.appendChild(svgIcon(ICON_CLOSE));
  ui.close.firstChild.setAttribute('width', '18');
  ui.close.firstChild.setAttribute('height', '18');
  ui.close.firstChild.style.fill = 'currentColor';
  header.appendChild(ui.title);
  header.appendChild(ui.close);
  ui.status = el('div', 'status');
  ui.status.setAttribute('role', 'status');
  ui.status.setAttribute('aria-live', 'polite');
  ui.status.hidden = true;
  ui.log = el('div', 'log');
  ui.log.setAttribute('role', 'log');
  ui.log.setAttribute('aria-live', 'polite');
  ui.log.setAttribute('aria-label', t('log'));
  ui.log.tabIndex = 0;
  ui.typing = el('div', 'typing');
  ui.typing.hidden = true;
  var dots = el('span', 'dots');
  dots.setAttribute('aria-hidden', 'true');
  dots.appendChild(el('i')); dots.appendChild(el('i')); dots.appendChild(el('i'));
  ui.typing.appendChild(dots);
  ui.typing.appendChild(el('span', null, t('typing')));
  ui.form = el('form');
  ui.form.setAttribute('aria-label', t('input'));
  var label = el('label', 'sr', t('input'));
  label.htmlFor = 'kefu-input';
  ui.input = el('textarea');
  ui.input.id = 'kefu-input';
  ui.input.rows = 1;
  ui.input.maxLength = 2000;
  ui.input.placeholder = t('placeholder');
  ui.input.setAttribute('enterkeyhint', 'send');
  ui.send = el('button', null, t('send'));
  ui.send.type = 'submit';
  ui.form.appendChild(label);
  ui.form.appendChild(ui.input);
  ui.form.appendChild(ui.send);
  ui.panel.appendChild(header);
  ui.panel.appendChild(ui.status);
  ui.panel.appendChild(ui.log);
  ui.panel.appendChild(ui.form);
  root.appendChild(ui.panel);
  root.appendChild(ui.launcher);

  /* ---- state ---- */
  var conv = store.get(KEY); /* {id, token, ratedSeq} */
  var rendered = {};         /* seq → true */
  var lastSeq = 0;
  var state = 'bot';
  var queueInfo = null;
  var inFlight = 0;
  var held = [];             /* push messages that arrived while a send was in flight */
  var push = null;
  var online = true;
  var unread = 0;
  var ratingBox = null;
  var surveySeq = 0;
  var queueTimer = null;
  var starting = null;
  var restoring = false;     /* the stored transcript is being shown again: no unread count */

  function api(method, path, body, token) {
    var headers = { 'Accept': 'application/json' };
    if (body) headers['Content-Type'] = 'application/json';
    if (token) headers['Authorization'] = 'Bearer ' + token;
    return fetch(cfg.server + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      mode: 'cors', credentials: 'omit', cache: 'no-store'
    }).then(function (r) {
      return r.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
        if (!r.ok) {
          var err = new Error((data && data.error && data.error.message) || ('http ' + r.status));
          err.status = r.status;
          err.code = data && data.error && data.error.code;
          throw err;
        }
        return data;
      });
    });
  }
  function convPath(suffix) { return '/v1/conversations/' + encodeURIComponent(conv.id) + suffix; }
  function save() { if (conv) store.set(KEY, conv); }

  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }
  function isOpen() { return !ui.panel.hidden; }

  function bubble(from, text, seq) {
    var cls = from === 'customer' || from === 'agent' || from === 'system' ? from : 'bot';
    var m = el('div', 'msg ' + cls);
    m.appendChild(el('span', 'who', t(cls === 'bot' ? 'bot' : cls === 'customer' ? 'you' : cls)));
    var body = el('span', 'text');
    appendLinkified(body, text);
    m.appendChild(body);
    if (seq) m.setAttribute('data-seq', String(seq));
    ui.log.insertBefore(m, ui.typing.parentNode === ui.log ? ui.typing : null);
    if (!isOpen() && from !== 'customer' && !restoring) { unread++; showBadge(); }
    scrollDown();
    return m;
  }
  function showBadge() {
    ui.badge.hidden = unread === 0;
    ui.badge.textContent = String(unread);
    ui.launcher.setAttribute('aria-label', unread ? t('open') + ' (' + unread + ' ' + t('unread') + ')' : t('open'));
  }
  function clearQuick() {
    var old = ui.log.querySelectorAll('.quick');
    for (var i = 0; i < old.length; i++) old[i].parentNode.removeChild(old[i]);
  }
  function place(node) { ui.log.insertBefore(node, ui.typing.parentNode === ui.log ? ui.typing : null); scrollDown(); }

  function renderArticles(list) {
    if (!list || !list.length) return;
    var ul = el('ul', 'articles');
    ul.setAttribute('aria-label', t('articles'));
    var lab = el('li', 'label', t('articles'));
    lab.setAttribute('aria-hidden', 'true');
    ul.appendChild(lab);
    list.forEach(function (a) {
      if (!a || typeof a.id !== 'string') return;
      var li = el('li');
      var title = typeof a.title === 'string' && a.title ? a.title : a.id;
      var url = articleUrl(a.id);
      if (url) {
        var link = el('a', null, title);
        link.href = url; link.target = '_blank'; link.rel = 'noopener noreferrer';
        li.appendChild(link);
      } else {
        li.appendChild(el('span', null, title));
      }
      ul.appendChild(li);
    });
    place(ul);
  }
  function renderQuick(list) {
    clearQuick();
    if (!list || !list.length) return;
    var box = el('div', 'quick');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', t('quick'));
    list.forEach(function (q) {
      if (typeof q !== 'string') return;
      var b = el('button', null, q);
      b.type = 'button';
      b.addEventListener('click', function () { clearQuick(); sendText(q); });
      box.appendChild(b);
    });
    place(box);
  }

  function setStatus(kind, text) {
    ui.status.className = 'status' + (kind ? ' ' + kind : '');
    ui.status.textContent = text || '';
    ui.status.hidden = !text;
  }
  function waitText(s) {
    var n = Math.round((s || 0) / 60);
    return n < 1 ? t('waitSoon') : t('waitMin', { n: n });
  }
  function showState() {
    if (!online) return setStatus('offline', t('offline'));
    if (state === 'queued' && queueInfo) {
      return setStatus('', t('queue', { pos: queueInfo.position || 1, wait: waitText(queueInfo.wait_s) }));
    }
    if (state === 'agent') return setStatus('agent', t('withAgent'));
    setStatus('', '');
  }
  function setState(s, q) {
    if (typeof s === 'string') state = s;
    queueInfo = q && typeof q === 'object' ? q : null;
    showState();
    if (state === 'queued' && !queueTimer) queueTimer = setInterval(refresh, 15000);
    if (state !== 'queued' && queueTimer) { clearInterval(queueTimer); queueTimer = null; }
    if (state === 'resolved' && surveySeq > (conv && conv.ratedSeq || 0)) askRating();
    if (state !== 'resolved' && ratingBox) { ratingBox.parentNode && ratingBox.parentNode.removeChild(ratingBox); ratingBox = null; }
  }
  function setOnline(on) {
    if (online === on) return;
    online = on;
    showState();
  }

  /* ---- rating ---- */
  function askRating() {
    if (ratingBox) return;
    var box = el('div', 'rating');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-labelledby', 'kefu-rate-q');
    var q = el('p', null, t('rate'));
    q.id = 'kefu-rate-q';
    box.appendChild(q);
    var stars = el('div', 'stars');
    stars.setAttribute('role', 'radiogroup');
    stars.setAttribute('aria-labelledby', 'kefu-rate-q');
    var chosen = 0, buttons = [];
    function pick(n) {
      chosen = n;
      buttons.forEach(function (b, i) {
        b.setAttribute('aria-checked', i + 1 === n ? 'true' : 'false');
        b.classList.toggle('lit', i < n);
        b.tabIndex = i + 1 === (n || 1) ? 0 : -1;
      });
      submit.disabled = !n;
    }
    for (var i = 1; i <= 5; i++) {
      (function (n) {
        var b = el('button', null, '★');
        b.type = 'button';
        b.setAttribute('role', 'radio');
        b.setAttribute('aria-checked', 'false');
        b.setAttribute('aria-label', t('star', { n: n }));
        b.setAttribute('data-rating', String(n));
        b.tabIndex = n === 1 ? 0 : -1;
        b.addEventListener('click', function () { pick(n); });
        b.addEventListener('keydown', function (e) {
          var k = e.key;
          if (k === 'ArrowRight' || k === 'ArrowUp') { e.preventDefault(); pick(Math.min(5, n + 1)); buttons[Math.min(5, n + 1) - 1].focus(); }
          if (k === 'ArrowLeft' || k === 'ArrowDown') { e.preventDefault(); pick(Math.max(1, n - 1)); buttons[Math.max(1, n - 1) - 1].focus(); }
        });
        buttons.push(b);
        stars.appendChild(b);
      })(i);
    }
    box.appendChild(stars);
    var comment = el('textarea');
    comment.setAttribute('aria-label', t('comment'));
    comment.placeholder = t('comment');
    comment.maxLength = 1000;
    box.appendChild(comment);
    var submit = el('button', 'submit', t('submit'));
    submit.type = 'button';
    submit.disabled = true;
    submit.addEventListener('click', function () {
      if (!chosen) return;
      submit.disabled = true;
      var body = { rating: chosen };
      if (comment.value.trim()) body.comment = comment.value.trim();
      api('POST', convPath('/feedback'), body, conv.token).then(function () {
        conv.ratedSeq = surveySeq;
        save();
        box.textContent = '';
        box.appendChild(el('p', null, t('thanks')));
        box.setAttribute('data-done', 'true');
      }).catch(function () {
        submit.disabled = false;
        setStatus('offline', t('error'));
      });
    });
    box.appendChild(submit);
    ratingBox = box;
    place(box);
  }

  /* ---- messages from the server ---- */
  function take(m) {
    if (!m || typeof m.seq !== 'number') return;
    if (m.seq > lastSeq) lastSeq = m.seq;
    if (m.source === 'survey' && m.seq > surveySeq) surveySeq = m.seq;
    if (rendered[m.seq]) return;
    rendered[m.seq] = true;
    if (typeof m.text === 'string') bubble(m.from, m.text, m.seq);
  }
  /* A message from the push channel: held while a send is in flight, so the
   * reply of that send is shown once, with its quick replies and articles. */
  function pushed(m) {
    if (inFlight) { held.push(m); return; }
    var seen = rendered[m.seq];
    take(m);
    if (seen) return;
    if (m.from === 'agent' || m.from === 'system' || m.source === 'survey') {
      if (m.source === 'survey') state = 'resolved';
      refresh();
    }
  }
  function flushHeld() {
    var list = held; held = [];
    list.sort(function (a, b) { return a.seq - b.seq; });
    list.forEach(pushed);
  }
  /* Reads the state and queue position (and anything missed). */
  function refresh() {
    if (!conv) return;
    api('GET', convPath('/messages?after=' + lastSeq), null, conv.token).then(function (r) {
      setOnline(true);
      (r.messages || []).forEach(pushed);
      setState(r.state, r.queue);
    }).catch(function () {});
  }

  /* ---- the push channel: SSE, or long-poll ---- */
  function Push() { this.stopped = false; this.es = null; this.backoff = 1000; this.opened = false; this.failures = 0; }
  Push.prototype.start = function () {
    if (cfg.transport !== 'poll' && window.EventSource) this.sse(); else this.poll();
  };
  Push.prototype.stop = function () {
    this.stopped = true;
    if (this.es) this.es.close();
    if (this.ctl) this.ctl.abort();
  };
  Push.prototype.sse = function () {
    var self = this;
    var url = cfg.server + convPath('/events?after=' + lastSeq + '&token=' + encodeURIComponent(conv.token));
    var es = new EventSource(url);
    this.es = es;
    es.addEventListener('open', function () {
      self.opened = true; self.failures = 0;
      if (!online) { setOnline(true); refresh(); }
    });
    es.addEventListener('message', function (e) {
      var m; try { m = JSON.parse(e.data); } catch (x) { return; }
      pushed(m);
    });
    es.addEventListener('error', function () {
      if (self.stopped) return;
      self.failures++;
      if (es.readyState === 2 || (!self.opened && self.failures >= 3)) {
        /* closed for good (an error status) or never opened: long-poll instead */
        es.close();
        self.es = null;
        if (self.opened) setOnline(false);
        self.poll();
        return;
      }
      setOnline(false); /* EventSource reconnects by itself, with Last-Event-ID */
    });
  };
  Push.prototype.poll = function () {
    var self = this;
    if (this.stopped) return;
    this.ctl = window.AbortController ? new AbortController() : null;
    var headers = { 'Accept': 'application/json', 'Authorization': 'Bearer ' + conv.token };
    fetch(cfg.server + convPath('/messages?after=' + lastSeq + '&wait=25'), {
      headers: headers, mode: 'cors', credentials: 'omit', cache: 'no-store', signal: this.ctl ? this.ctl.signal : undefined
    }).then(function (r) {
      if (r.status === 401 || r.status === 403 || r.status === 404) { self.stopped = true; restart(); return null; }
      if (!r.ok) throw new Error('http ' + r.status);
      return r.json();
    }).then(function (r) {
      if (!r || self.stopped) return;
      self.backoff = 1000;
      setOnline(true);
      (r.messages || []).forEach(pushed);
      setState(r.state, r.queue);
      self.poll();
    }).catch(function () {
      if (self.stopped) return;
      setOnline(false);
      self.timer = setTimeout(function () { self.poll(); }, self.backoff);
      self.backoff = Math.min(self.backoff * 2, 30000);
    });
  };
  Push.prototype.wake = function () {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; this.backoff = 1000; this.poll(); }
  };

  /* ---- the conversation ---- */
  function restart() {
    if (push) push.stop();
    push = null;
    store.del(KEY);
    conv = null;
    rendered = {}; lastSeq = 0; surveySeq = 0; state = 'bot';
    ui.log.textContent = '';
    ensure();
  }
  function begin() {
    push = new Push();
    push.start();
  }
  /* Restores the stored conversation or starts one; resolves when ready. */
  function ensure() {
    if (starting) return starting;
    if (conv && push) return Promise.resolve();
    ui.log.appendChild(ui.typing);
    if (conv) {
      starting = api('GET', convPath('/messages?after=0'), null, conv.token).then(function (r) {
        setOnline(true);
        restoring = true;
        var list = r.messages || [];
        try { list.forEach(take); } finally { restoring = false; }
        /* the server keeps the last answer's quick replies while nothing came after it */
        var last = list[list.length - 1];
        if (last && last.from === 'bot' && r.state === 'bot') renderQuick(last.quick_replies);
        setState(r.state, r.queue);
        begin();
      }, function (e) {
        if (e.status === 401 || e.status === 403 || e.status === 404) {
          conv = null; store.del(KEY); starting = null;
          return ensure();
        }
        setOnline(false);
        throw e;
      });
    } else {
      var customer = { id: customerId() };
      if (cfg.customerName) customer.name = cfg.customerName;
      if (cfg.customerTier) customer.tier = cfg.customerTier;
      var body = { channel: cfg.channel, customer: customer, locale: cfg.locale };
      starting = api('POST', '/v1/conversations', body).then(function (r) {
        setOnline(true);
        conv = { id: r.id, token: r.token, ratedSeq: 0 };
        save();
        (r.messages || []).forEach(take);
        setState(r.state, null);
        begin();
      }, function (e) { setOnline(false); throw e; });
    }
    return starting.then(function () { starting = null; }, function (e) { starting = null; throw e; });
  }

  function sendText(text, bubbleEl, clientId) {
    text = String(text).replace(/^\s+|\s+$/g, '');
    if (!text) return;
    clearQuick();
    var mine = bubbleEl || bubble('customer', text);
    mine.classList.add('pending');
    mine.classList.remove('failed');
    var old = mine.querySelector('.retry');
    if (old) old.parentNode.removeChild(old);
    var cid = clientId || 'w-' + randomHex(8);
    inFlight++;
    ui.typing.hidden = false;
    scrollDown();
    ensure().then(function () {
      return api('POST', convPath('/messages'), { text: text, client_id: cid }, conv.token);
    }).then(function (r) {
      setOnline(true);
      mine.classList.remove('pending');
      var seq = r.seq;
      if (r.reply) {
        rendered[seq - 1] = true;
        mine.setAttribute('data-seq', String(seq - 1));
        if (seq > lastSeq) lastSeq = seq;
        rendered[seq] = true;
        var text2 = r.reply.text || '';
        bubble('bot', text2, seq);
        if (r.reply.source === 'feedback' && conv) { /* a rating typed as a message */
          conv.ratedSeq = surveySeq;
          save();
          if (ratingBox && ratingBox.parentNode) ratingBox.parentNode.removeChild(ratingBox);
          ratingBox = null;
        }
        if (r.reply.notice) bubble('system', r.reply.notice);
        renderArticles(r.reply.articles);
        renderQuick(r.reply.quick_replies);
      } else {
        rendered[seq] = true;
        mine.setAttribute('data-seq', String(seq));
        if (seq > lastSeq) lastSeq = seq;
      }
      setState(r.state, r.queue);
    }).catch(function (e) {
      mine.classList.remove('pending');
      mine.classList.add('failed');
      var note = el('button', 'retry', t('retry'));
      note.type = 'button';
      note.setAttribute('aria-label', t('failed') + ' ' + t('retry'));
      note.addEventListener('click', function () { sendText(text, mine, cid); });
      mine.appendChild(note);
      if (e && e.status === 429) setStatus('offline', t('tooFast'));
      else if (e && e.status) setStatus('offline', t('error'));
      else setOnline(false);
    }).then(function () {
      inFlight--;
      if (!inFlight) { ui.typing.hidden = true; flushHeld(); }
    });
  }

  /* ---- opening, closing, keyboard ---- */
  function open() {
    ui.panel.hidden = false;
    host.setAttribute('data-open', '');
    ui.launcher.setAttribute('aria-expanded', 'true');
    unread = 0; showBadge();
    try { sessionStorage.setItem(KEY + ':open', '1'); } catch (e) {}
    ensure().catch(function () {});
    ui.input.focus();
    scrollDown();
  }
  function close() {
    ui.panel.hidden = true;
    host.removeAttribute('data-open');
    ui.launcher.setAttribute('aria-expanded', 'false');
    try { sessionStorage.removeItem(KEY + ':open'); } catch (e) {}
    ui.launcher.focus();
  }
  ui.launcher.addEventListener('click', function () { if (isOpen()) close(); else open(); });
  ui.close.addEventListener('click', close);
  ui.panel.addEventListener('keydown', function (e) { if (e.key === 'Escape') { e.preventDefault(); close(); } });
  ui.form.addEventListener('submit', function (e) {
    e.preventDefault();
    var v = ui.input.value;
    if (!v.trim()) return;
    ui.input.value = '';
    sendText(v);
  });
  ui.input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ui.form.requestSubmit ? ui.form.requestSubmit() : ui.send.click(); }
  });
  window.addEventListener('online', function () { if (push) push.wake(); refresh(); });
  window.addEventListener('offline', function () { setOnline(false); });

  function mount() {
    document.body.appendChild(host);
    var wasOpen = false;
    try { wasOpen = sessionStorage.getItem(KEY + ':open') === '1'; } catch (e) {}
    if (conv) ensure().catch(function () {}); /* follow agent replies even while closed */
    if (cfg.open || wasOpen) open();
  }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);

  window.KefuWidget = { open: open, close: close, config: cfg, version: 1 };
})();
