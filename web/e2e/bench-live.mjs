// The browser side of web/benches/live.rs: sign in, open the appointment, stamp each new
// thumbnail's arrival in the DOM with a MutationObserver. Line protocol as e2e/live.mjs:
// `STEP …` out, `GATEWAY image <k> <sent-at-ms>` in; stdin closed ends it.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env('BASE_URL');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const step = (text) => console.log(`STEP ${text}`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${BASE}/sign-in`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60000 });
  await page.fill('#email', env('USER1'));
  await page.fill('#password', env('PASS1'));
  await Promise.all([page.waitForURL('**/clinics', { timeout: 60000 }), page.click('#sign-in')]);
  await page.goto(`${BASE}/appointments/${env('APPOINTMENT_ID')}`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60000 });
  await page.waitForSelector('#live[data-live="connected"]', { timeout: 60000 });
  await page.evaluate(() => {
    window.thumbTimes = [];
    const count = () => document.querySelectorAll('#gallery img.app-thumb').length;
    new MutationObserver(() => {
      while (window.thumbTimes.length < count()) window.thumbTimes.push(Date.now());
    }).observe(document.body, { childList: true, subtree: true });
  });
  step('ready');
  for (;;) {
    const { value, done } = await lines.next();
    if (done || value === 'GATEWAY done') break;
    const [k, sentAt] = value.replace('GATEWAY image ', '').split(' ').map(Number);
    await page.waitForFunction((n) => window.thumbTimes.length >= n, k, { timeout: 30000 });
    const at = await page.evaluate((n) => window.thumbTimes[n - 1], k);
    step(`image ${k} ${at - sentAt}`);
  }
  console.log('RESULT 1 passed, 0 failed');
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
  console.log('RESULT 0 passed, 1 failed');
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
