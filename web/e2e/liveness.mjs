// Browser test of gateway liveness (web/tests/browser_admin.rs drives it and stops and starts
// the real gateway): the gateways page says online (or degraded) and the clinic has no banner;
// the gateway stops and, within the probe interval, the page says offline and the clinic shows
// "Gateway offline … sends will be delivered when it returns"; it starts again and both clear.
// Same line protocol as live.mjs: `STEP …` out, `GATEWAY …` in.
//
// Env: BASE_URL, USER1, PASS1, CLINIC_ID, GATEWAY_ID, ARTIFACTS, CHROMIUM.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { env, expectLine, step, watch, live, axe, run, signIn } from './lib.mjs';

const BASE = env('BASE_URL');
const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });
const card = `#gateway-${env('GATEWAY_ID')}`;
const reachable = `${card} [data-liveness]:not([data-liveness="offline"])`;
const offline = `${card} [data-liveness="offline"]`;

await run(ARTIFACTS, async (browser) => {
  const context = await browser.newContext();
  const gateways = await context.newPage();
  watch(gateways);
  await signIn(gateways, BASE, env('USER1'), env('PASS1'));
  await gateways.goto(`${BASE}/gateways`);
  await live(gateways);
  const clinic = await context.newPage();
  watch(clinic);
  await clinic.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(clinic);

  await gateways.waitForSelector(reachable, { timeout: 60000 });
  await clinic.waitForSelector('#gateway-offline', { state: 'detached', timeout: 60000 });
  step('reachable');

  await expectLine('GATEWAY stopped');
  const stopped = Date.now();
  await gateways.waitForSelector(offline, { timeout: 60000 });
  const banner = await clinic.waitForSelector('#gateway-offline', { timeout: 60000 });
  // Measured before the checks and screenshots below, which take a second or more themselves.
  const offlineMs = Date.now() - stopped;
  const text = (await banner.textContent()).replace(/\s+/g, ' ');
  if (!/offline since .*Sends will be delivered when it returns/.test(text)) throw new Error(`banner: ${text}`);
  await axe(clinic, 'clinic with its gateway offline');
  await gateways.screenshot({ path: join(ARTIFACTS, 'gateways-offline.png'), fullPage: true });
  await clinic.screenshot({ path: join(ARTIFACTS, 'clinic-offline.png'), fullPage: true });
  step(`offline ${offlineMs}`);

  await expectLine('GATEWAY started');
  const started = Date.now();
  await gateways.waitForSelector(reachable, { timeout: 60000 });
  await clinic.waitForSelector('#gateway-offline', { state: 'detached', timeout: 60000 });
  step(`back ${Date.now() - started}`);
});
