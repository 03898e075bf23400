/* team.js — agent accounts for whoever holds the admin token: the list
 * (GET /v1/admin/agents), adding one (its token shown once), disabling,
 * enabling and rotating. The admin token stays in sessionStorage for the
 * tab only. Every text from the server is set with textContent. */
(function () {
  'use strict';
  var TOKEN_KEY = 'kefu.team.token';
  var $ = function (id) { return document.getElementById(id); };
  var token = sessionStorage.getItem(TOKEN_KEY) || '';

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function api(method, path, body) {
    var h = { 'Accept': 'application/json', 'Authorization': 'Bearer ' + token };
    if (body) h['Content-Type'] = 'application/json';
    return fetch(path, { method: method, headers: h, body: body ? JSON.stringify(body) : undefined, cache: 'no-store' })
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
  function why(err) {
    if (err.status === 401) return 'That admin token is not the server\'s.';
    if (err.status === 403) return 'The server has no admin token set (KEFU_ADMIN_TOKEN): accounts are managed with kefu agent.';
    return err.message;
  }
  function fmtTime(at) { return typeof at === 'number' ? new Date(at * 1000).toLocaleString() : ''; }

  function showToken(d) {
    $('new-token-name').textContent = d.name;
    $('new-token-value').textContent = d.token;
    $('new-token').hidden = false;
  }
  $('new-token-done').addEventListener('click', function () {
    $('new-token-value').textContent = '';
    $('new-token').hidden = true;
  });

  function action(name, verb, btn) {
    btn.disabled = true;
    $('list-error').textContent = '';
    api('POST', '/v1/admin/agents/' + encodeURIComponent(name) + '/' + verb).then(function (d) {
      if (verb === 'rotate' && d && d.token) showToken(d);
      return load();
    }).catch(function (err) {
      btn.disabled = false;
      $('list-error').textContent = name + ': ' + why(err);
    });
  }

  function render(list) {
    var body = $('accounts').querySelector('tbody');
    body.textContent = '';
    list.forEach(function (a) {
      var tr = el('tr');
      tr.dataset.name = a.name;
      tr.appendChild(el('td', 'name', a.name));
      tr.appendChild(el('td', 'state ' + a.state, a.state));
      tr.appendChild(el('td', null, Array.isArray(a.skills) ? a.skills.join(', ') : ''));
      tr.appendChild(el('td', null, a.capacity));
      tr.appendChild(el('td', null, fmtTime(a.updated_at)));
      var td = el('td', 'actions');
      var toggle = el('button', 'toggle', a.state === 'disabled' ? 'Enable' : 'Disable');
      toggle.type = 'button';
      toggle.addEventListener('click', function () { action(a.name, a.state === 'disabled' ? 'enable' : 'disable', toggle); });
      var rotate = el('button', 'rotate', 'New token');
      rotate.type = 'button';
      rotate.title = 'The old token stops working at once';
      rotate.addEventListener('click', function () { action(a.name, 'rotate', rotate); });
      td.appendChild(toggle);
      td.appendChild(rotate);
      tr.appendChild(td);
      body.appendChild(tr);
    });
    $('count').textContent = String(list.length);
    $('none').hidden = list.length > 0;
  }
  function load() {
    return api('GET', '/v1/admin/agents').then(function (d) {
      render(d && Array.isArray(d.agents) ? d.agents : []);
    });
  }

  $('add').addEventListener('submit', function (e) {
    e.preventDefault();
    $('add-error').textContent = '';
    var body = { name: $('add-name').value.trim() };
    var skills = $('add-skills').value.split(',').map(function (s) { return s.trim(); }).filter(Boolean);
    if (skills.length) body.skills = skills;
    var cap = $('add-capacity').value.trim();
    if (cap) body.capacity = Number(cap);
    api('POST', '/v1/admin/agents', body).then(function (d) {
      $('add').reset();
      showToken(d);
      return load();
    }).catch(function (err) { $('add-error').textContent = why(err); });
  });

  function start() {
    $('signin').hidden = true;
    $('app').hidden = false;
    load().catch(function (err) { $('list-error').textContent = why(err); });
  }
  $('signin').addEventListener('submit', function (e) {
    e.preventDefault();
    var tok = $('token').value.trim();
    $('signin-error').textContent = '';
    token = tok;
    load().then(function () {
      sessionStorage.setItem(TOKEN_KEY, tok);
      $('token').value = '';
      start();
    }).catch(function (err) {
      token = '';
      $('signin-error').textContent = why(err);
    });
  });
  $('signout').addEventListener('click', function () {
    sessionStorage.removeItem(TOKEN_KEY);
    token = '';
    $('app').hidden = true;
    $('signin').hidden = false;
    $('token').focus();
  });
  if (token) start();
})();
