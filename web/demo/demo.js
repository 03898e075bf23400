/* demo.js — loads the chat widget on the demo shop page, in the language
 * the page's ?lang= asks for (en, zh, zh-hant), optionally as a named
 * customer (?name=, ?customer=, ?tier=). A real shop writes the one
 * script tag by hand; this only chooses its attributes. */
(function () {
  'use strict';
  var q = new URLSearchParams(location.search);
  var lang = q.get('lang') || (/^zh/i.test(navigator.language || '') ? 'zh' : 'en');
  if (!/^(en|zh|zh-hant)$/.test(lang)) lang = 'en';
  document.documentElement.lang = lang === 'zh-hant' ? 'zh-Hant' : lang;
  var s = document.createElement('script');
  s.src = '/widget.js';
  s.setAttribute('data-kefu-server', location.origin);
  s.setAttribute('data-locale', lang);
  s.setAttribute('data-articles-url', '/demo/help.html?article={id}');
  ['name', 'customer', 'tier', 'transport', 'articles'].forEach(function (k) {
    var v = q.get(k);
    if (v === null) return;
    var attr = { name: 'customer-name', customer: 'customer-id', tier: 'customer-tier',
                 transport: 'transport', articles: 'articles-url' }[k];
    s.setAttribute('data-' + attr, v);
  });
  if (q.get('open') === '1') s.setAttribute('data-open', 'true');
  document.body.appendChild(s);
})();
