// Browser test of administration (web/tests/browser.rs drives it and starts the real gateway):
// a clinician is refused the admin pages (403) and has no admin menu; the administrator adds a
// gateway with its relay settings through the form; the Rust side starts `gateway serve` with
// those settings and gives it a clinic; the administrator sends a participant through it and sees
// it delivered, with no restart of the web app; the clinician then cannot see that action's
// payload, which the administrator can.
// Same line protocol as live.mjs: `STEP …` out, `GATEWAY …` in.
//
// Env: BASE_URL, ADMIN_USER, ADMIN_PASS, CLINICIAN_USER, CLINICIAN_PASS, GATEWAY_NAME,
// RELAY_NAMESPACE, RELAY_ENDPOINT, ACTIONS_HC, EVENTS_HC, KEY_NAME, KEY_ENV, PUBLIC_KEY,
// ARTIFACTS, CHROMIUM.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { env, expectLine, step, watch, live, axe, run, signIn as signInPage } from './lib.mjs';

const BASE = env('BASE_URL');
const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });

async function signIn(browser, user, pass) {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  await signInPage(page, BASE, user, pass);
  return page;
}

await run(ARTIFACTS, async (browser) => {
  const clinician = await signIn(browser, env('CLINICIAN_USER'), env('CLINICIAN_PASS'));
  for (const path of ['/admin/users', '/admin/gateways/new']) {
    const response = await clinician.goto(`${BASE}${path}`);
    if (response.status() !== 403) throw new Error(`clinician got ${response.status()} for ${path}`);
    await clinician.waitForSelector('#forbidden');
  }
  if (await clinician.$('nav a[href="/admin/users"]')) throw new Error('a clinician has the Users menu item');
  await clinician.goto(`${BASE}/gateways`);
  await clinician.waitForSelector('body[data-hydrated="true"]');
  await clinician.waitForSelector('section.nhsuk-card');
  if (await clinician.$('#add-gateway')) throw new Error('a clinician is offered Add a gateway');
  step('clinician refused');

  const admin = await signIn(browser, env('ADMIN_USER'), env('ADMIN_PASS'));
  await admin.waitForSelector('nav a[href="/admin/users"]');
  await admin.goto(`${BASE}/admin/users`);
  await admin.waitForSelector('body[data-hydrated="true"]');
  await admin.waitForSelector(`#accounts tr[data-email="${env('CLINICIAN_USER')}"]`);
  await axe(admin, 'users');
  await admin.screenshot({ path: join(ARTIFACTS, '1-users.png'), fullPage: true });

  await admin.goto(`${BASE}/gateways`);
  await live(admin);
  await Promise.all([admin.waitForURL('**/admin/gateways/new'), admin.click('#add-gateway')]);
  await admin.waitForSelector('body[data-hydrated="true"]');
  await admin.fill('#name', env('GATEWAY_NAME'));
  await admin.fill('#relay_namespace', env('RELAY_NAMESPACE'));
  await admin.fill('#relay_endpoint', env('RELAY_ENDPOINT'));
  await admin.fill('#actions_hc', env('ACTIONS_HC'));
  await admin.fill('#events_hc', env('EVENTS_HC'));
  await admin.fill('#key_name', env('KEY_NAME'));
  await admin.fill('#key_env_var', env('KEY_ENV'));
  await admin.fill('#public_keys', env('PUBLIC_KEY'));
  await axe(admin, 'add a gateway');
  await admin.screenshot({ path: join(ARTIFACTS, '2-add-gateway.png'), fullPage: true });
  await Promise.all([admin.waitForURL('**/gateways'), admin.click('#save-gateway')]);
  const card = await admin.waitForSelector(`section.nhsuk-card:has(h2:text-is("${env('GATEWAY_NAME')}"))`, { timeout: 60000 });
  const id = (await card.getAttribute('id')).replace('gateway-', '');
  step(`gateway added ${id}`);

  // The Rust side has started the gateway with these settings and given it a clinic.
  const [clinic, appointment] = (await expectLine('GATEWAY ready')).split(' ');
  await admin.goto(`${BASE}/clinics/${clinic}`);
  await live(admin);
  const scope = `#appointment-${appointment}`;
  await admin.click(`${scope} button.app-send`);
  await admin.waitForSelector(`${scope} [data-delivery="delivered"]`, { timeout: 60000 });
  await admin.screenshot({ path: join(ARTIFACTS, '3-delivered.png'), fullPage: true });
  step(`delivered ${appointment}`);

  const action = await expectLine('GATEWAY action');
  await admin.goto(`${BASE}/actions/${action}`);
  await admin.waitForSelector('body[data-hydrated="true"]');
  await admin.waitForSelector('#payload');
  await clinician.goto(`${BASE}/actions/${action}`);
  await clinician.waitForSelector('body[data-hydrated="true"]');
  await clinician.waitForSelector('#action');
  if (await clinician.$('#payload')) throw new Error('a clinician sees the payload');
  await axe(clinician, 'action without payload');
  step('payload for administrators only');
});
