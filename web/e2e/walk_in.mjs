// Browser test of walk-ins (web/tests/browser.rs drives it and plays the gateway, which reports
// items a local operator added while the cloud was away): the clinic page lists the walk-in live
// with "Walk-in: confirm or match"; on its appointment page the clinician matches it to the booked
// appointment it is (the page moves there, with the walk-in's accession number), and confirms a
// second one as a new appointment. Same line protocol as live.mjs: `STEP …` out, `GATEWAY …` in.
//
// Env: BASE_URL, USER1, PASS1, CLINIC_ID, ARTIFACTS, CHROMIUM.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { env, expectLine, step, watch, live, axe, run, signIn } from './lib.mjs';

const BASE = env('BASE_URL');
const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });
// The clinic row of a walk-in in `state`: found by its tag, as the clinician would.
async function walkInRow(page, state) {
  return page.waitForSelector(`#appointments tbody tr:has(.app-walk-in[data-walk-in="${state}"])`, { timeout: 60000 });
}

await run(ARTIFACTS, async (browser) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  await signIn(page, BASE, env('USER1'), env('PASS1'));
  await page.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(page);
  step('watching');

  // The first walk-in appears on the open clinic page without a reload.
  const first = await expectLine('GATEWAY walk-in');
  const row = await walkInRow(page, 'unconfirmed');
  const rowText = (await row.textContent()).replace(/\s+/g, ' ');
  if (!rowText.includes('Walk-in: confirm or match')) throw new Error(`walk-in row: ${rowText}`);
  await axe(page, 'clinic with a walk-in');
  await page.screenshot({ path: join(ARTIFACTS, '1-clinic-walk-in.png'), fullPage: true });
  const walkInId = (await row.getAttribute('id')).replace('appointment-', '');
  step(`listed ${walkInId}`);

  // Its page: the warning callout; match it to the booked appointment offered first.
  await Promise.all([page.waitForURL(`**/appointments/${walkInId}`), (await row.$('a')).click()]);
  await live(page);
  const callout = await page.waitForSelector('#walk-in.nhsuk-warning-callout[data-walk-in="unconfirmed"]');
  if (!(await callout.textContent()).includes('Walk-in added at the gateway')) throw new Error('callout text');
  await axe(page, 'unconfirmed walk-in');
  await page.screenshot({ path: join(ARTIFACTS, '2-walk-in.png'), fullPage: true });
  const booked = await page.$eval('#match-target', (s) => s.value);
  await Promise.all([page.waitForURL(`**/appointments/${booked}`), page.click('#match-walk-in')]);
  await live(page);
  await page.waitForFunction((acc) => document.body.textContent.includes(acc), first, { timeout: 60000 });
  // The page may show the walk-in's record for a moment after the navigation, until the booked
  // appointment's own data arrives: wait for that, and fail only if it never does.
  await page.waitForFunction(() => !document.querySelector('#walk-in'), null, { timeout: 60000 })
    .catch(() => { throw new Error('the booked appointment still reads as a walk-in'); });
  await page.screenshot({ path: join(ARTIFACTS, '3-matched.png'), fullPage: true });
  step(`matched ${booked}`);

  // A second walk-in: confirmed as a new appointment.
  await page.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(page);
  step('watching again');
  await expectLine('GATEWAY walk-in');
  const second = await walkInRow(page, 'unconfirmed');
  const secondId = (await second.getAttribute('id')).replace('appointment-', '');
  await Promise.all([page.waitForURL(`**/appointments/${secondId}`), (await second.$('a')).click()]);
  await live(page);
  await page.click('#confirm-walk-in');
  await page.waitForSelector('#walk-in[data-walk-in="confirmed"]', { timeout: 60000 });
  await axe(page, 'confirmed walk-in');
  await page.screenshot({ path: join(ARTIFACTS, '4-confirmed.png'), fullPage: true });
  step(`confirmed ${secondId}`);
});
