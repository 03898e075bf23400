/* run.js — the widget and the console in headless Chromium against a real
 * kefu serve. Prints one "ok NAME" or "not ok NAME" line per test (with
 * the reason on the following "#" lines); tests/run.sh counts them. Every
 * page is watched for dialogs, uncaught errors and console errors: any of
 * them fails the test that caused it. No test waits on a clock: each waits
 * for what a person would see, with playwright's bounded waits. */
'use strict';
const http = require('http');
const path = require('path');
const { execFileSync } = require('child_process');
const { AGENT_TOKEN, startServer, launch, api } = require('./lib');

const XSS_IMG = '<img src=x onerror="window.__xss=1;alert(1)">';
const XSS_SCRIPT = '<script>window.__xss=2;alert(2)</script>';
const XSS_LINK = 'javascript:alert(3)';
const XSS_NAME = '<img src=x onerror="alert(\'name\')">Mallory';

let server, shop, shopOrigin;
const results = [];

/* Records dialogs, page errors and console errors of every page of ctx. */
function watch(ctx, problems) {
  const hook = (page) => {
    page.on('dialog', (d) => { problems.push('dialog: ' + d.message()); d.dismiss().catch(() => {}); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
  };
  ctx.pages().forEach(hook);
  ctx.on('page', hook);
}

async function test(name, fn, expected) {
  const problems = [];
  const opened = [];
  const open = async (opts) => {
    const b = await launch(opts);
    opened.push(b);
    watch(b.context, problems);
    return b.context;
  };
  if (process.env.ONLY && !name.includes(process.env.ONLY)) return;
  try {
    await fn(open, problems);
    const left = problems.filter((x) => !(expected && expected.test(x)));
    if (left.length) throw new Error(left.join('\n'));
    results.push(true);
    console.log('ok ' + name);
  } catch (e) {
    results.push(false);
    console.log('not ok ' + name);
    if (process.env.SHOTS) for (const [i, b] of opened.entries()) for (const [j, pg] of b.context.pages().entries()) await pg.screenshot({ path: process.env.SHOTS + '/fail-' + i + '-' + j + '.png' }).catch(() => {});
    console.log(String(e && e.stack || e).split('\n').map((l) => '# ' + l).join('\n'));
  } finally {
    for (const b of opened) await b.close().catch(() => {});
  }
}

function assert(cond, msg) { if (!cond) throw new Error('assertion failed: ' + msg); }

async function page(ctx, path) {
  const p = ctx.pages()[0] || await ctx.newPage();
  await p.goto(server.url + path);
  return p;
}
async function openWidget(p) {
  await p.locator('.launcher').click();
  await p.locator('#kefu-input').waitFor();
  await p.locator('.msg.bot').first().waitFor(); /* the greeting */
}
async function ask(p, text) {
  const before = await p.locator('.msg.bot').count();
  await p.locator('#kefu-input').fill(text);
  await p.locator('#kefu-input').press('Enter');
  await p.locator('.msg.bot').nth(before).waitFor();
  return p.locator('.msg.bot').nth(before).locator('.text').textContent();
}
async function signIn(p) {
  await p.locator('#token').fill(AGENT_TOKEN);
  await p.locator('#signin button[type=submit]').click();
  await p.locator('#app').waitFor();
}
async function convId(p) {
  return p.evaluate(() => {
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k.startsWith('kefu.v1:')) return JSON.parse(localStorage.getItem(k)).id;
    }
    return null;
  });
}

/* Another site on its own origin that embeds the widget with one script tag. */
function startShop() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>Another shop</title>' +
        '<style>body{font:20px serif;color:#123}div,button{all:unset}</style><h1>Another shop</h1>' +
        '<script src="' + server.url + '/widget.js" data-kefu-server="' + server.url + '" data-locale="en"></script>');
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

async function main() {
  server = { url: '' };
  shop = await startShop();
  shopOrigin = 'http://127.0.0.1:' + shop.address().port;
  server = await startServer(['--cors-origin', shopOrigin]);

  await test('widget: a common question in English gets the rule answer with its article', async (open) => {
    const p = await page(await open(), '/demo?lang=en');
    /* keyboard: the launcher is a labelled button reachable by Tab, Enter opens, Escape closes */
    const launcher = p.locator('.launcher');
    assert((await launcher.getAttribute('aria-label')).length > 0, 'launcher has a label');
    await launcher.focus();
    await p.keyboard.press('Enter');
    await p.locator('#kefu-input').waitFor();
    assert(await p.evaluate(() => document.querySelector('#kefu-widget').shadowRoot.activeElement.id) === 'kefu-input', 'input focused on open');
    assert(await launcher.getAttribute('aria-expanded') === 'true', 'aria-expanded');
    await p.locator('.msg.bot').first().waitFor();
    const answer = await ask(p, 'how do I get an invoice');
    assert(answer.includes('electronic general invoice'), 'invoice answer: ' + answer);
    const link = p.locator('.articles a').first();
    await link.waitFor();
    const href = await link.getAttribute('href');
    assert(/^http:\/\/127\.0\.0\.1:\d+\/demo\/help\.html\?article=invoice-howto$/.test(href), 'article link: ' + href);
    assert(await p.locator('.log[role=log]').count() === 1, 'log role');
    await p.keyboard.press('Escape');
    assert(await p.locator('.panel').isHidden(), 'Escape closes');
    /* isolated styles: the page's stylesheet does not reach into the widget */
    assert(await p.evaluate(() => !!document.querySelector('#kefu-widget').shadowRoot), 'shadow root');
  });

  await test('widget: the same question in traditional Chinese gets the same answer as in simplified', async (open) => {
    const ctx = await open();
    const p = await page(ctx, '/demo?lang=zh-hant');
    await openWidget(p);
    assert((await p.locator('.launcher').getAttribute('aria-label')).includes('客服'), 'zh-hant UI strings');
    const hant = await ask(p, '我要開發票');
    const p2 = await ctx.newPage();
    await p2.goto(server.url + '/demo?lang=zh&customer=simplified-1');
    await p2.evaluate(() => localStorage.clear());
    await p2.reload();
    await openWidget(p2);
    const hans = await ask(p2, '我要开发票');
    assert(hans.includes('电子普通发票'), 'simplified answer: ' + hans);
    assert(hant === hans, 'same answer: ' + hant + ' / ' + hans);
  });

  await test('widget: a clarification offers quick replies that send when clicked', async (open) => {
    const p = await page(await open(), '/demo?lang=en');
    await openWidget(p);
    /* fixture/rules/clarify.rules: two close intents, so the bot asks which */
    await ask(p, 'lantern lost broken');
    const quick = p.locator('.quick button');
    assert(await quick.count() === 2, 'two quick replies');
    assert(await p.locator('.quick[role=group]').getAttribute('aria-label'), 'quick replies labelled');
    const label = await quick.first().textContent();
    const before = await p.locator('.msg.customer').count();
    await quick.first().click();
    await p.locator('.msg.customer').nth(before).waitFor();
    assert(await p.locator('.msg.customer').nth(before).locator('.text').textContent() === label, 'quick reply sent as text');
  });

  await test('widget: quick replies offered mid-clarification survive a reload and still send', async (open) => {
    const p = await page(await open(), '/demo?lang=en&customer=u-reload-quick');
    await openWidget(p);
    await ask(p, 'I want to return something');
    const asked = await ask(p, 'KF12345678'); /* an order number alone: what to do about it? */
    assert(asked.includes('KF12345678'), 'question about the order: ' + asked);
    const quick = p.locator('.quick button');
    await quick.first().waitFor();
    const labels = await quick.allTextContents();
    assert(labels.length === 3 && labels[0] === 'return an item from this order', 'quick replies: ' + labels.join(' | '));
    /* the widget keeps only the conversation's token in the page: the replies come back from the server */
    assert(!(await p.evaluate(() => JSON.stringify(Object.assign({}, localStorage)))).includes(labels[0]), 'not in localStorage');
    await p.reload();
    await p.locator('.msg.bot', { hasText: 'KF12345678' }).waitFor();
    await quick.first().waitFor();
    const again = await quick.allTextContents();
    assert(again.join('|') === labels.join('|'), 'same quick replies after reload: ' + again.join(' | '));
    const before = await p.locator('.msg.bot').count();
    await quick.first().click();
    await p.locator('.msg.bot').nth(before).waitFor();
    const answer = await p.locator('.msg.bot').nth(before).locator('.text').textContent();
    assert(answer.includes('return an item from order KF12345678'), 'the tapped reply answers for the order: ' + answer);
    assert(await quick.count() === 0, 'quick replies gone once used');
    /* once answered, a reload offers no stale quick replies */
    await p.reload();
    await p.locator('.msg.bot', { hasText: 'return an item from order KF12345678' }).waitFor();
    assert(await quick.count() === 0, 'no quick replies after the answer and a reload');
  });

  await test('handoff: console claims with the packet, replies live, resolves, and the rating is stored', async (open) => {
    const customer = await page(await open(), '/demo?lang=en&name=Li%20Lei&customer=u-handoff');
    await openWidget(customer);
    await ask(customer, 'how do I get an invoice');
    await ask(customer, 'I want to talk to a human');
    await customer.locator('.status', { hasText: 'number 1 in the queue' }).waitFor();
    const id = await convId(customer);
    assert(id, 'conversation id stored');

    const agentCtx = await open();
    const agent = await page(agentCtx, '/console');
    await signIn(agent);
    await agent.locator('#me', { hasText: 'Signed in as alice' }).waitFor();
    /* presence from the console: away, then online again, as the server answers it */
    for (const want of ['away', 'online']) {
      const [resp] = await Promise.all([
        agent.waitForResponse((r) => r.url().endsWith('/v1/agent/presence') && (r.request().postData() || '').includes('"' + want + '"')),
        agent.locator('#presence').selectOption(want),
      ]);
      const j = await resp.json();
      assert(resp.status() === 200 && j.status === want && j.agent === 'alice', 'presence ' + want + ': ' + JSON.stringify(j));
    }
    const item = agent.locator('#queue .item[data-id="' + id + '"]');
    await item.waitFor();
    const itemText = await item.textContent();
    assert(itemText.includes('Li Lei') && itemText.includes('requested') && itemText.includes('how do I get an invoice'), 'queue item: ' + itemText);
    await item.click();
    await agent.locator('#p-reason', { hasText: 'requested' }).waitFor();
    assert((await agent.locator('#p-customer').textContent()).includes('u-handoff'), 'profile in the packet');
    assert((await agent.locator('#p-intents').textContent()).includes('invoice.request'), 'what the bot understood');
    assert((await agent.locator('#transcript').textContent()).includes('how do I get an invoice'), 'transcript');
    await agent.locator('#claim').click();
    await agent.locator('#reply-text:not([disabled])').waitFor();
    /* insert a suggested article, then reply */
    const insert = agent.locator('#p-articles button').first();
    if (await insert.count()) {
      await insert.click();
      assert((await agent.locator('#reply-text').inputValue()).length > 0, 'article inserted');
    }
    await agent.locator('#reply-text').fill('Hello Li Lei, this is Alice. Your invoice is on its way.');
    await agent.locator('#send').click();
    await customer.locator('.msg.agent', { hasText: 'this is Alice' }).waitFor();
    await customer.locator('.status.agent').waitFor();
    /* the customer answers; the agent sees it live */
    await customer.locator('#kefu-input').fill('thank you!');
    await customer.locator('#kefu-input').press('Enter');
    await agent.locator('#transcript .msg.customer', { hasText: 'thank you!' }).waitFor();
    await agent.locator('#resolve').click();
    const star = customer.locator('.stars button[data-rating="4"]');
    await star.waitFor();
    await star.click();
    await customer.locator('.rating textarea').fill('quick and kind');
    await customer.locator('.rating .submit').click();
    await customer.locator('.rating[data-done="true"]').waitFor();
    const st = await api(server.url, 'GET', '/v1/stats', null, AGENT_TOKEN);
    assert(st.json.ratings.values[3] >= 1, 'rating 4 stored: ' + JSON.stringify(st.json.ratings));
    assert(/^[A-Za-z0-9_-]+$/.test(id), 'conversation id shape');
    const row = execFileSync('sqlite3', [path.join(server.dir, 'data', 'kefu.db'),
      "SELECT rating || '|' || coalesce(comment, '') FROM feedback WHERE conv = '" + id + "'"]).toString().trim();
    assert(row === '4|quick and kind', 'feedback row in kefu.db: ' + row);
    /* the console's figures of the day agree with the API after the resolve */
    await agent.waitForFunction((n) => {
      const d = [...document.querySelectorAll('#figures div')].find((x) => x.querySelector('dt').textContent === 'Handoffs');
      return d && d.querySelector('dd').textContent === String(n);
    }, st.json.handoffs);
    assert(st.json.first_response_s.count >= 1, 'the reply is a first response: ' + JSON.stringify(st.json.first_response_s));
    await agent.waitForFunction(() => {
      const d = [...document.querySelectorAll('#figures div')].find((x) => x.querySelector('dt').textContent === 'First response');
      return d && / s$/.test(d.querySelector('dd').textContent);
    });
    assert(await agent.locator('#chart-hours svg rect').count() > 0, 'the hourly chart has bars');
    /* the KPI table has the web channel, its first response as the API gives it */
    const kw = st.json.kpi.channels.find((c) => c.channel === 'web');
    assert(kw && kw.conversations >= 1 && typeof kw.first_response_s === 'number', 'kpi row: ' + JSON.stringify(st.json.kpi));
    const cellText = await agent.locator('#kpi tr[data-channel="web"] td[data-kpi="first_response_s"]').textContent();
    assert(/ s$/.test(cellText), 'kpi first response cell: ' + cellText);
    assert((await agent.locator('#kpi tr[data-channel="web"] td[data-kpi="first_response_s"]').getAttribute('title')) === 'red line: max 30 s', 'the red line beside it');
    /* the conversation survives a reload of the shop page */
    await customer.reload(); /* the panel stays open across the reload */
    await customer.locator('.msg.agent', { hasText: 'this is Alice' }).waitFor();
    assert(await convId(customer) === id, 'same conversation after reload');
    assert(await customer.locator('.rating').count() === 0, 'no second rating prompt after reload');
  });

  await test('console: a red line crossed shows a banner, which goes once the line clears; an escalated VIP is marked', async (open) => {
    const srv = await startServer(['--redlines', path.join(__dirname, 'fixture', 'redlines.conf'), '--watch-interval', '0.2']);
    let agent;
    try {
      agent = (await open()).pages()[0];
      await agent.goto(srv.url + '/console');
      await signIn(agent);
      assert(await agent.locator('#redlines p').count() === 0, 'no banner before any breach');
      const c = await api(srv.url, 'POST', '/v1/conversations', { channel: 'web', customer: { id: 'u-banner', name: 'Late' }, locale: 'en' });
      const conv = c.json;
      const h = await fetch(srv.url + '/v1/conversations/' + conv.id + '/messages', {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + conv.token },
        body: JSON.stringify({ text: 'I want to talk to a human' })
      });
      assert(h.status === 200, 'handoff ' + h.status);
      assert((await api(srv.url, 'POST', '/v1/conversations/' + conv.id + '/claim', null, AGENT_TOKEN)).status === 200, 'claim');
      const vip = (await api(srv.url, 'POST', '/v1/conversations', { channel: 'web', customer: { id: 'u-vip', name: 'Very Important', tier: 'vip' }, locale: 'en' })).json;
      const vh = await fetch(srv.url + '/v1/conversations/' + vip.id + '/messages', {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + vip.token },
        body: JSON.stringify({ text: 'I want to talk to a human' })
      });
      assert(vh.status === 200, 'vip handoff ' + vh.status);
      await new Promise((r) => setTimeout(r, 2200)); /* whole seconds: at least 2 s, over the line of 1 s */
      assert((await api(srv.url, 'POST', '/v1/conversations/' + conv.id + '/agent-messages', { text: 'Sorry for the wait.' }, AGENT_TOKEN)).status === 200, 'late reply');
      const banner = agent.locator('#redlines p[data-name="first_response"]');
      await banner.waitFor({ timeout: 5000 });
      const text = await banner.textContent();
      assert(text.includes('Red line "first_response" crossed (channel web)') && text.includes('at most 1 s'), 'banner text: ' + text);
      assert(await agent.locator('#redlines[role=alert]').count() === 1, 'the banner is an alert');
      const item = agent.locator('#queue .item[data-id="' + vip.id + '"]');
      await item.locator('.escalated').waitFor({ timeout: 5000 });
      const label = await item.getAttribute('aria-label');
      assert(label.includes('urgent priority, escalated') && (await item.textContent()).includes('vip-urgent'), 'escalated item: ' + label);
      await agent.locator('#redlines p').first().waitFor({ state: 'detached', timeout: 10000 });
    } finally {
      if (agent) await agent.close(); /* before the server stops: no refused long-poll */
      await srv.stop();
    }
  });

  await test('accounts: an admin adds an agent (token shown once), who signs in; disabled and rotated tokens are refused', async (open) => {
    const ADMIN = 'adm-9c8b7a6f5e4d3c2b1a09';
    const srv = await startServer([], { KEFU_ADMIN_TOKEN: ADMIN });
    let ctx = null;
    try {
      ctx = await open();
      const team = await ctx.newPage();
      await team.goto(srv.url + '/console/team.html');
      await team.locator('#token').fill('not-the-admin-token-at-all');
      await team.locator('#signin button[type=submit]').click();
      await team.locator('#signin-error:has-text("not the server")').waitFor();
      await team.locator('#token').fill(ADMIN);
      await team.locator('#signin button[type=submit]').click();
      await team.locator('#app').waitFor();
      await team.locator('#add-name').fill('mei');
      await team.locator('#add-skills').fill('general, billing');
      await team.locator('#add-capacity').fill('3');
      await team.locator('#add button[type=submit]').click();
      await team.locator('#new-token:not([hidden])').waitFor();
      const tok = (await team.locator('#new-token-value').textContent()).trim();
      assert(tok.length >= 16 && (await team.locator('#new-token-name').textContent()) === 'mei', 'token shown: ' + tok);
      const row = team.locator('#accounts tr[data-name="mei"]');
      await row.waitFor();
      const rowText = await row.textContent();
      assert(rowText.includes('enabled') && rowText.includes('general, billing') && rowText.includes('3'), 'row: ' + rowText);
      await team.locator('#new-token-done').click();
      assert((await team.locator('#new-token-value').textContent()) === '', 'the token is gone once dismissed');
      /* the new token signs in to the console */
      const con = await ctx.newPage();
      await con.goto(srv.url + '/console/');
      await con.locator('#token').fill(tok);
      await con.locator('#signin button[type=submit]').click();
      await con.locator('#app').waitFor();
      /* disabled: refused at once */
      await row.locator('button.toggle').click();
      await team.locator('#accounts tr[data-name="mei"] td.state.disabled').waitFor();
      assert((await api(srv.url, 'GET', '/v1/queue', null, tok)).status === 401, 'a disabled token is refused');
      await row.locator('button.toggle').click();
      await team.locator('#accounts tr[data-name="mei"] td.state.enabled').waitFor();
      assert((await api(srv.url, 'GET', '/v1/queue', null, tok)).status === 200, 'enabled again, it works');
      /* rotated: the old token is refused, the new one shown once works */
      await row.locator('button.rotate').click();
      await team.locator('#new-token:not([hidden])').waitFor();
      const tok2 = (await team.locator('#new-token-value').textContent()).trim();
      assert(tok2 && tok2 !== tok, 'a new token');
      assert((await api(srv.url, 'GET', '/v1/queue', null, tok)).status === 401, 'the old token is refused after a rotation');
      assert((await api(srv.url, 'GET', '/v1/queue', null, tok2)).status === 200, 'the new token works');
      const listed = (await api(srv.url, 'GET', '/v1/admin/agents', null, ADMIN)).json;
      assert(!JSON.stringify(listed).includes(tok2), 'no token in the list');
    } finally {
      if (ctx) for (const pg of ctx.pages()) await pg.close(); /* before the server stops: no refused long-poll */
      await srv.stop();
    }
  }, /status of 401/); /* the wrong admin token, and the console's calls with the disabled token */

  await test('console: the Today panel lists the running A/B test with its variants', async (open) => {
    const c = (await api(server.url, 'POST', '/v1/conversations', { channel: 'web', customer: { id: 'u-ab' }, locale: 'en' })).json;
    const m = await fetch(server.url + '/v1/conversations/' + c.id + '/messages', {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + c.token },
      body: JSON.stringify({ text: 'giftcardtrial' })
    });
    const reply = (await m.json()).reply;
    assert(reply && reply.intent === 'ab.gift_card', 'the experiment answered: ' + JSON.stringify(reply));
    const agent = await page(await open(), '/console');
    await signIn(agent);
    const li = agent.locator('#experiments li[data-intent="ab.gift_card"]');
    await li.waitFor();
    const text = await li.textContent();
    const arm = /Happy to help/.test(reply.text) ? 'warm' : 'plain';
    assert(text.includes('plain ') && text.includes('warm ') && text.includes(arm + ' 100% of 1') && text.includes('warm vs plain: p '),
      'experiment line: ' + text);
    assert(await agent.locator('#experiments-none').isHidden(), 'no "none running" note');
  });

  await test('xss: payloads from customers, agents, names and articles stay text in widget and console', async (open, problems) => {
    const name = encodeURIComponent(XSS_NAME);
    const bad = encodeURIComponent('javascript:alert(4)//{id}');
    const customer = await page(await open(), '/demo?lang=en&customer=u-xss&name=' + name + '&articles=' + bad);
    await openWidget(customer);
    const wrap = await ask(customer, 'can you gift wrap my parcel');
    assert(wrap.includes('gift wrap'), 'gift wrap answer: ' + wrap);
    const art = customer.locator('.articles li:not(.label)').first();
    await art.waitFor();
    const artText = await art.textContent();
    assert(artText.includes('<img src=x onerror=') && artText.includes('<script>'), 'article title as text: ' + artText);
    assert(await customer.locator('.articles a').count() === 0, 'a javascript: article URL is not a link');
    for (const payload of [XSS_IMG, XSS_SCRIPT, XSS_LINK + ' and http://127.0.0.1/ok']) {
      await customer.locator('#kefu-input').fill(payload);
      await customer.locator('#kefu-input').press('Enter');
      await customer.locator('.msg.customer .text', { hasText: payload }).waitFor();
    }
    await ask(customer, 'talk to a human');
    const id = await convId(customer);

    const agent = await page(await open(), '/console');
    await signIn(agent);
    const item = agent.locator('#queue .item[data-id="' + id + '"]');
    await item.waitFor();
    assert((await item.textContent()).includes(XSS_NAME), 'name as text in the queue');
    await item.click();
    await agent.locator('#conv-title', { hasText: XSS_NAME }).waitFor();
    await agent.locator('#transcript .msg.customer .text', { hasText: XSS_IMG }).waitFor();
    await agent.locator('#transcript .msg.customer .text', { hasText: XSS_SCRIPT }).waitFor();
    await agent.locator('#claim').click();
    await agent.locator('#reply-text:not([disabled])').waitFor();
    for (const payload of [XSS_IMG, XSS_SCRIPT, '<a href="javascript:alert(5)">click</a> ' + XSS_LINK]) {
      await agent.locator('#reply-text').fill(payload);
      await agent.locator('#send').click();
      await customer.locator('.msg.agent .text', { hasText: payload }).waitFor();
      await agent.locator('#transcript .msg.agent .text', { hasText: payload }).waitFor();
    }
    for (const p of [customer, agent]) {
      const found = await p.evaluate(() => {
        const roots = [document];
        const w = document.querySelector('#kefu-widget');
        if (w && w.shadowRoot) roots.push(w.shadowRoot);
        let imgs = 0, scripts = 0, js = 0;
        roots.forEach((r) => {
          imgs += r.querySelectorAll('img').length;
          scripts += r.querySelectorAll('.log script, #transcript script, #queue script, .packet script').length;
          r.querySelectorAll('a[href]').forEach((a) => { if (!/^https?:/.test(a.href)) js++; });
        });
        return { imgs, scripts, js, xss: window.__xss || 0 };
      });
      assert(found.imgs === 0 && found.scripts === 0 && found.js === 0 && found.xss === 0, 'nothing injected: ' + JSON.stringify(found));
    }
    assert(await customer.locator('.msg a[href="http://127.0.0.1/ok"]').count() === 1, 'plain http links still work');
    assert(problems.length === 0, 'no dialogs or errors');
    await agent.locator('#resolve').click();
    await customer.locator('.stars button').first().waitFor();
  });

  await test('widget: embedded with one script tag on another origin (CORS), agent replies arrive live', async (open) => {
    const ctx = await open();
    const p = ctx.pages()[0] || await ctx.newPage();
    await p.goto(shopOrigin + '/');
    await openWidget(p);
    const answer = await ask(p, 'how do I get an invoice');
    assert(answer.includes('electronic general invoice'), 'answer across origins: ' + answer);
    /* the host page's "div,button{all:unset}" does not reach into the shadow root */
    const bg = await p.locator('.launcher').evaluate((b) => getComputedStyle(b).borderRadius);
    assert(bg === '50%', 'launcher keeps its own style: ' + bg);
    await ask(p, 'talk to a human');
    const id = await convId(p);
    assert((await api(server.url, 'POST', '/v1/conversations/' + id + '/claim', null, AGENT_TOKEN)).status === 200, 'claim');
    await p.locator('.status.agent').waitFor();
    await p.locator('.close').click(); /* closed: the reply shows as a count on the launcher */
    await api(server.url, 'POST', '/v1/conversations/' + id + '/agent-messages', { text: 'Hello from the agent across origins.' }, AGENT_TOKEN);
    await p.locator('.launcher .badge', { hasText: '1' }).waitFor();
    assert((await p.locator('.launcher').getAttribute('aria-label')).includes('1'), 'the count is in the label');
    await p.locator('.launcher').click();
    await p.locator('.msg.agent', { hasText: 'across origins' }).waitFor();
    assert(await p.locator('.launcher .badge').isHidden(), 'count cleared on open');
    await api(server.url, 'POST', '/v1/conversations/' + id + '/resolve', null, AGENT_TOKEN);
    await p.locator('.stars button[data-rating="5"]').waitFor();
  });

  await test('widget: usable at 375x667', async (open) => {
    const ctx = await open({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true });
    const p = await page(ctx, '/demo?lang=zh');
    await openWidget(p);
    const box = await p.locator('.panel').boundingBox();
    assert(box && box.x >= 0 && box.y >= 0 && box.x + box.width <= 375.5 && box.y + box.height <= 667.5, 'panel inside the viewport: ' + JSON.stringify(box));
    const send = await p.locator('form button[type=submit]').boundingBox();
    assert(send && send.y + send.height <= 667.5 && send.width >= 40 && send.height >= 36, 'send button reachable: ' + JSON.stringify(send));
    const answer = await ask(p, '我要开发票');
    assert(answer.includes('电子普通发票'), 'answer on a phone: ' + answer);
    /* the send button is not covered (a click checks that it receives the pointer) */
    await p.locator('#kefu-input').fill('怎么退货');
    await p.locator('form button[type=submit]').click({ timeout: 5000 });
    await p.locator('.msg.customer .text', { hasText: '怎么退货' }).waitFor();
    const wide = await p.evaluate(() => document.documentElement.scrollWidth);
    assert(wide <= 375, 'no horizontal scrolling: ' + wide);
    await p.locator('.close').click();
    assert(await p.locator('.launcher').isVisible(), 'launcher back after close');
  });

  await test('widget: reconnects after a network drop and shows what the agent said meanwhile', async (open) => {
    const ctx = await open();
    const p = await page(ctx, '/demo?lang=en&customer=u-drop&transport=poll');
    await openWidget(p);
    await ask(p, 'talk to a human');
    const id = await convId(p);
    const c = await api(server.url, 'POST', '/v1/conversations/' + id + '/claim', null, AGENT_TOKEN);
    assert(c.status === 200, 'claim ' + c.status);
    await p.locator('.status.agent').waitFor();
    await ctx.setOffline(true);
    await p.evaluate(() => window.dispatchEvent(new Event('offline')));
    await p.locator('.status.offline').waitFor();
    const m = await api(server.url, 'POST', '/v1/conversations/' + id + '/agent-messages', { text: 'Sent while you were offline.' }, AGENT_TOKEN);
    assert(m.status === 200, 'agent message ' + m.status);
    await ctx.setOffline(false);
    await p.evaluate(() => window.dispatchEvent(new Event('online')));
    await p.locator('.msg.agent', { hasText: 'Sent while you were offline.' }).waitFor();
    await p.locator('.status.agent').waitFor();
    await api(server.url, 'POST', '/v1/conversations/' + id + '/resolve', null, AGENT_TOKEN);
  }, /net::ERR_INTERNET_DISCONNECTED/);
}

main().catch((e) => {
  results.push(false);
  console.log('not ok browser tests could not run');
  console.log(String(e && e.stack || e).split('\n').map((l) => '# ' + l).join('\n'));
}).then(async () => {
  if (server && server.stop) await server.stop();
  if (shop) shop.close();
  const failed = results.filter((r) => !r).length;
  console.log('# browser: ' + (results.length - failed) + ' passed, ' + failed + ' failed');
  process.exitCode = failed ? 1 : 0;
});
