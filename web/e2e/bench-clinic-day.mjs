// The browser side of web/benches/clinic_day.rs: a clinician signed in with the clinic page open
// in one tab and the day's last participant's appointment page in another, both live. A
// MutationObserver stamps each new thumbnail's arrival in the appointment page's DOM. Line
// protocol as e2e/live.mjs (lib.mjs): `STEP …` out; in, in this order: `GATEWAY stored <ms> <n>`
// (the last C-STORE was answered at <ms>; wait for the n-th thumbnail) and
// `GATEWAY day over <appointments>` (wait for the clinic page to show them all complete).
import { env, expectLine, step, signIn, live, run, stampThumbnails } from './lib.mjs';

const BASE = env('BASE_URL');
await run(env('ARTIFACTS'), async (browser) => {
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
  await stampThumbnails(appointment);
  step('ready');

  const [storedAt, n] = (await expectLine('GATEWAY stored')).split(' ').map(Number);
  await appointment.waitForFunction((k) => window.thumbTimes.length >= k, n, { timeout: 120000 });
  const at = await appointment.evaluate((k) => window.thumbTimes[k - 1], n);
  step(`last thumbnail ${at - storedAt}`);

  const appointments = Number(await expectLine('GATEWAY day over'));
  await clinic.waitForFunction(
    (k) => document.querySelectorAll('#appointments [data-status="complete"]').length >= k,
    appointments, { timeout: 120000 });
  step('clinic complete');
});
