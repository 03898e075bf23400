/* screenshots.js — regenerates docs/widget.png, docs/widget-mobile.png and
 * docs/console.png from a real kefu serve (make screenshots). */
'use strict';
const path = require('path');
const { ROOT, AGENT_TOKEN, startServer, launch, api } = require('./lib');

/* A conversation through the API: the customer says each text in turn; returns its id and token. */
async function talk(base, customer, locale, texts) {
  const c = (await api(base, 'POST', '/v1/conversations', { channel: 'web', customer, locale })).json;
  for (const text of texts) await api(base, 'POST', '/v1/conversations/' + c.id + '/messages', { text }, c.token);
  return c;
}

async function main() {
  const server = await startServer();
  const browsers = [];
  try {
    const b1 = await launch({ viewport: { width: 1100, height: 760 } });
    browsers.push(b1);
    const shop = await b1.context.newPage();
    await shop.goto(server.url + '/demo?lang=zh&name=' + encodeURIComponent('王小明') + '&customer=u-shot&tier=vip');
    await shop.locator('.launcher').click();
    await shop.locator('.msg.bot').first().waitFor();
    const say = async (text) => {
      const n = await shop.locator('.msg.bot').count();
      await shop.locator('#kefu-input').fill(text);
      await shop.locator('#kefu-input').press('Enter');
      await shop.locator('.msg.bot').nth(n).waitFor();
    };
    await say('我要开发票');
    await say('我要转人工');
    await shop.locator('.status').waitFor();
    await shop.screenshot({ path: path.join(ROOT, 'docs', 'widget.png') });

    /* a day with some history: two rated conversations and two more customers waiting */
    for (const [who, rating] of [['u-r1', 5], ['u-r2', 4]]) {
      const c = await talk(server.url, { id: who, name: who === 'u-r1' ? 'Chen Jie' : 'Sam Lee' }, 'en',
        ['where is my refund', 'KF20240101', 'I want to talk to a person']);
      await api(server.url, 'POST', '/v1/conversations/' + c.id + '/claim', null, AGENT_TOKEN);
      await api(server.url, 'POST', '/v1/conversations/' + c.id + '/resolve', null, AGENT_TOKEN);
      await api(server.url, 'POST', '/v1/conversations/' + c.id + '/feedback', { rating }, c.token);
    }
    await talk(server.url, { id: 'u-w1', name: 'Emma Wu' }, 'en', ['my parcel arrived damaged', 'this is useless, let me talk to a human']);
    await talk(server.url, { id: 'u-w2', name: '林小華' }, 'zh-hant', ['我的包裹還沒到', '請幫我轉人工']);
    for (const q of ['how do I get an invoice', 'can I pay in installments', 'how do I return an item']) await talk(server.url, { id: 'u-a' }, 'en', [q]);

    const b2 = await launch({ viewport: { width: 1280, height: 760 } });
    browsers.push(b2);
    const con = await b2.context.newPage();
    await con.goto(server.url + '/console');
    await con.locator('#token').fill(AGENT_TOKEN);
    await con.locator('#signin button[type=submit]').click();
    await con.locator('#queue .item[data-id]').nth(2).waitFor();
    await con.locator('#queue .item', { hasText: '王小明' }).click();
    await con.locator('#claim').click();
    await con.locator('#reply-text:not([disabled])').waitFor();
    await con.locator('#reply-text').fill('您好，我是客服 Alice，发票已为您重新发送到邮箱。');
    await con.locator('#send').click();
    await shop.locator('.msg.agent').waitFor();
    await con.locator('#transcript .msg.agent').waitFor();
    await con.locator('#p-articles button').first().waitFor();
    await con.locator('#figures dd').first().waitFor();
    await con.screenshot({ path: path.join(ROOT, 'docs', 'console.png') });

    const b3 = await launch({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true });
    browsers.push(b3);
    const phone = await b3.context.newPage();
    await phone.goto(server.url + '/demo?lang=en&customer=u-phone');
    await phone.locator('.launcher').click();
    await phone.locator('.msg.bot').first().waitFor();
    for (const text of ['my parcel has not arrived', 'KF12345678']) {
      const n = await phone.locator('.msg.bot').count();
      await phone.locator('#kefu-input').fill(text);
      await phone.locator('#kefu-input').press('Enter');
      await phone.locator('.msg.bot').nth(n).waitFor();
    }
    await phone.screenshot({ path: path.join(ROOT, 'docs', 'widget-mobile.png') });
    console.log('screenshots: docs/widget.png docs/console.png docs/widget-mobile.png');
  } finally {
    for (const b of browsers) await b.close().catch(() => {});
    await server.stop();
  }
}
main().catch((e) => { console.error('screenshots: ' + (e && e.stack || e)); process.exitCode = 1; });
