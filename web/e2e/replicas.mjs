// Browser side of web/tests/failover.rs: a clinician's browser connected to one replica (C) of
// three, watching a clinic while sends are made on the other replicas and the gateway's events
// land on whichever replica the relay picked. The Rust side says what should show
// (`GATEWAY status <appointment> <status>`, `GATEWAY images <appointment> <n>`, `GATEWAY done`);
// this script waits for it on the page, without reloading, and says `STEP …` when it shows.
//
// Env: BASE_URL, USER1, PASS1, CLINIC_ID, ARTIFACTS, CHROMIUM.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { env, expectLine, step, watch, live, run, signIn } from './lib.mjs';

const BASE = env('BASE_URL');
const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });

await run(ARTIFACTS, async (browser) => {
  const context = await browser.newContext();
  const clinic = await context.newPage();
  watch(clinic);
  await signIn(clinic, BASE, env('USER1'), env('PASS1'));
  await clinic.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(clinic);
  step('watching');

  const appointments = new Map();
  for (;;) {
    const [what, id, value] = (await expectLine('GATEWAY')).split(' ');
    if (what === 'done') break;
    if (what === 'status') {
      await clinic.waitForSelector(`#appointment-${id} [data-status="${value}"]`, { timeout: 60000 });
      step(`status ${id} ${value}`);
    } else if (what === 'images') {
      let page = appointments.get(id);
      if (!page) {
        page = await context.newPage();
        watch(page);
        await page.goto(`${BASE}/appointments/${id}`);
        await live(page);
        appointments.set(id, page);
      }
      await page.waitForFunction((n) => document.querySelectorAll('#gallery img.app-thumb').length >= Number(n), value, { timeout: 60000 });
      const shown = await page.evaluate(() => document.querySelectorAll('#gallery img.app-thumb').length);
      if (shown !== Number(value)) throw new Error(`appointment ${id} shows ${shown} thumbnails, expected ${value}`);
      step(`images ${id} ${value}`);
    } else {
      throw new Error(`unknown line: ${what}`);
    }
  }
  await clinic.screenshot({ path: join(ARTIFACTS, 'clinic-on-replica-c.png'), fullPage: true });
  step('done');
});
