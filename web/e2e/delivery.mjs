// Browser test of the delivery state (web/tests/browser.rs drives it and plays the gateway): the
// clinic page shows, live, a worklist item retrying during a gateway outage (with the next attempt
// time and the reason), refused by the gateway (with its message), re-sent by the clinician and
// delivered; the appointment page shows it in an inset box with "– Awaiting images".
// Same line protocol as live.mjs: `STEP …` out, `GATEWAY …` in.
//
// Env: BASE_URL, USER1, PASS1, CLINIC_ID, ARTIFACTS, CHROMIUM.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { env, expectLine, step, watch, live, axe, run, signIn } from './lib.mjs';

const BASE = env('BASE_URL');
const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });
// The row's delivery element once it reads `state`, and its text.
async function deliveryIs(page, scope, state) {
  const el = await page.waitForSelector(`${scope} [data-delivery="${state}"]`, { timeout: 60000 });
  return (await el.textContent()).trim();
}

await run(ARTIFACTS, async (browser) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  await signIn(page, BASE, env('USER1'), env('PASS1'));
  await page.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(page);
  const row = await page.$('#appointments tbody tr:has([data-status="checked_in"])');
  const id = (await row.getAttribute('id')).replace('appointment-', '');
  const scope = `#appointment-${id}`;
  await page.click(`${scope} button.app-send`);
  step(`sent ${id}`);

  // Outage: no gateway listens; the row says so, with when it tries next and why.
  const retrying = await deliveryIs(page, scope, 'retrying');
  if (!/Next attempt at \d\d:\d\d:\d\d/.test(retrying) || !/no listener/i.test(retrying)) {
    throw new Error(`retrying row lacks the next attempt or the reason: ${retrying}`);
  }
  await page.waitForSelector(`${scope} button.app-resend`);
  await page.screenshot({ path: join(ARTIFACTS, '1-retrying.png'), fullPage: true });
  step(`retrying ${retrying}`);

  await expectLine('GATEWAY refusing');
  const refused = await deliveryIs(page, scope, 'refused');
  if (!refused.includes('worklist database is read-only')) throw new Error(`refusal without its reason: ${refused}`);
  await axe(page, 'clinic with a refusal');
  await page.screenshot({ path: join(ARTIFACTS, '2-refused.png'), fullPage: true });
  step(`refused ${refused}`);

  await expectLine('GATEWAY accepting');
  await page.click(`${scope} button.app-resend`);
  await deliveryIs(page, scope, 'delivered');
  if (await page.$(`${scope} button.app-resend`)) throw new Error('a delivered item still offers Re-send');
  await page.screenshot({ path: join(ARTIFACTS, '3-delivered.png'), fullPage: true });
  step('delivered');

  const appointment = await context.newPage();
  watch(appointment);
  await appointment.goto(`${BASE}/appointments/${id}`);
  await live(appointment);
  const inset = await appointment.waitForSelector('#delivery-inset.nhsuk-inset-text');
  const text = (await inset.textContent()).replace(/\s+/g, ' ');
  if (!text.includes('– Awaiting images') || !text.includes('On the modality worklist')) {
    throw new Error(`inset box: ${text}`);
  }
  await appointment.waitForSelector('#delivery-inset [data-delivery="delivered"]');
  if (await appointment.$('#heading-status')) throw new Error('status in the heading before any image');
  await axe(appointment, 'appointment awaiting images');
  await appointment.screenshot({ path: join(ARTIFACTS, '4-appointment-inset.png'), fullPage: true });
  step('inset');
});
