// The browser side of web/benches/clinic_day.rs: a clinician signed in with the clinic page open
// in one tab and the day's last participant's appointment page in another, both live. A
// MutationObserver stamps each new thumbnail's arrival in the appointment page's DOM. Line
// protocol as e2e/live.mjs: `STEP …` out; in: `GATEWAY stored <ms> <thumbnails>` (the last
// C-STORE was answered at <ms>) and `GATEWAY day over <appointments>`; stdin closed ends it.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { signIn, live } from './lib.mjs';
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
  const clinic = await context.newPage();
  clinic.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await signIn(clinic, BASE, env('USER1'), env('PASS1'));
  await clinic.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(clinic);
  const appointment = await context.newPage();
  appointment.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await appointment.goto(`${BASE}/appointments/${env('APPOINTMENT_ID')}`);
  await live(appointment);
  await appointment.evaluate(() => {
    window.thumbTimes = [];
    const count = () => document.querySelectorAll('#gallery img.app-thumb').length;
    new MutationObserver(() => {
      while (window.thumbTimes.length < count()) window.thumbTimes.push(Date.now());
    }).observe(document.body, { childList: true, subtree: true });
  });
  step('ready');
  for (;;) {
    const { value, done } = await lines.next();
    if (done) break;
    if (value.startsWith('GATEWAY stored ')) {
      const [storedAt, n] = value.replace('GATEWAY stored ', '').split(' ').map(Number);
      await appointment.waitForFunction((k) => window.thumbTimes.length >= k, n, { timeout: 120000 });
      const at = await appointment.evaluate((k) => window.thumbTimes[k - 1], n);
      step(`last thumbnail ${at - storedAt}`);
    } else if (value.startsWith('GATEWAY day over ')) {
      const n = Number(value.replace('GATEWAY day over ', ''));
      await clinic.waitForFunction(
        (k) => document.querySelectorAll('#appointments [data-status="complete"]').length >= k,
        n, { timeout: 120000 });
      step('clinic complete');
    }
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
