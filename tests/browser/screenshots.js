/* screenshots.js — regenerates docs/widget.png, docs/widget-mobile.png and
 * docs/console.png from a real kefu serve (make screenshots). */
'use strict';
const path = require('path');
const { ROOT, AGENT_TOKEN, startServer, launch } = require('./lib');

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

    const b2 = await launch({ viewport: { width: 1280, height: 760 } });
    browsers.push(b2);
    const con = await b2.context.newPage();
    await con.goto(server.url + '/console');
    await con.locator('#token').fill(AGENT_TOKEN);
    await con.locator('#signin button[type=submit]').click();
    await con.locator('#queue .item').first().click();
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
