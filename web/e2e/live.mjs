// Browser end-to-end test of the web app in Debian's Chromium (playwright-core, no downloaded
// browser). Driven by web/tests/browser.rs, which runs the server and plays the gateway over the
// relay emulator. The two talk by lines: this script prints `STEP ...` lines on stdout when the
// page shows a state, and reads lines on stdin telling it what the gateway just sent.
//
// Env: BASE_URL, USER1, PASS1, USER2, PASS2, CLINIC_ID, ARTIFACTS (screenshot directory),
//      CHROMIUM (default /usr/bin/chromium), IMAGES (how many image events to time, default 20).
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env('BASE_URL');
const ARTIFACTS = env('ARTIFACTS');
const IMAGES = Number(env('IMAGES', '20'));
mkdirSync(ARTIFACTS, { recursive: true });
const here = dirname(fileURLToPath(import.meta.url));
const axeSource = readFileSync(join(here, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expectLine(prefix) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${prefix}`);
  if (!value.startsWith(prefix)) throw new Error(`expected ${prefix}, got ${value}`);
  return value.slice(prefix.length).trim();
}
const step = (text) => console.log(`STEP ${text}`);
const errors = [];
// The pages run under their Content-Security-Policy: anything it blocks is a failure.
function watch(page) {
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Content-Security-Policy/i.test(m.text())) {
      errors.push(`${page.url()}: CSP: ${m.text()}`);
    }
  });
}

async function signIn(context, user, pass) {
  const page = await context.newPage();
  watch(page);
  await page.goto(`${BASE}/sign-in`);
  await hydrated(page);
  await page.fill('#email', user);
  await page.fill('#password', pass);
  await Promise.all([page.waitForURL('**/clinics'), page.click('#sign-in')]);
  return page;
}

async function hydrated(page) {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60000 });
}

async function live(page) {
  await hydrated(page);
  await page.waitForSelector('#live[data-live="connected"]', { timeout: 60000 });
}

async function axe(page, name) {
  // Evaluated through the DevTools protocol: a script tag would be (rightly) refused by the CSP.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result.violations) {
    console.error(`axe ${name}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes)`);
  }
  if (bad.length) throw new Error(`axe: ${bad.length} serious/critical violations on ${name}: ${bad.map((v) => v.id).join(', ')}`);
  step(`axe ${name} ok (${result.violations.length} minor)`);
}

async function statusIs(page, appointmentId, status) {
  await page.waitForSelector(`#appointment-${appointmentId} [data-status="${status}"]`, { timeout: 60000 });
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // No --user-data-dir: playwright gives a non-persistent launch a fresh temporary profile itself.
});
let failed = false;
try {
  const north = await browser.newContext();
  // Sign-in page accessibility, before signing in.
  const probe = await north.newPage();
  await probe.goto(`${BASE}/sign-in`);
  await hydrated(probe);
  await axe(probe, 'sign-in');
  await probe.close();

  const clinic = await signIn(north, env('USER1'), env('PASS1'));
  step('signed in');
  await clinic.goto(`${BASE}/clinics/${env('CLINIC_ID')}`);
  await live(clinic);
  await axe(clinic, 'clinic');
  const row = await clinic.$('#appointments tbody tr:has([data-status="checked_in"])');
  const appointmentId = (await row.getAttribute('id')).replace('appointment-', '');
  await clinic.click(`#appointment-${appointmentId} button.app-send`);
  await statusIs(clinic, appointmentId, 'sent_to_modality');
  await clinic.screenshot({ path: join(ARTIFACTS, '1-clinic-sent.png'), fullPage: true });
  step(`sent ${appointmentId}`);

  await expectLine('GATEWAY started');
  await statusIs(clinic, appointmentId, 'in_progress');
  step('in_progress');

  const appointment = await north.newPage();
  watch(appointment);
  await appointment.goto(`${BASE}/appointments/${appointmentId}`);
  await live(appointment);
  await axe(appointment, 'appointment');
  // In progress and no image yet: the status sits in the inset box, not beside the name.
  await appointment.waitForSelector('#delivery-inset #inset-status [data-status="in_progress"]', { timeout: 60000 });
  if (await appointment.$('#heading-status')) throw new Error('status in the heading before any image');
  // Record when each new thumbnail enters the DOM (the moment the clinician could see it).
  await appointment.evaluate(() => {
    window.thumbTimes = [];
    const count = () => document.querySelectorAll('#gallery img.app-thumb').length;
    new MutationObserver(() => {
      while (window.thumbTimes.length < count()) window.thumbTimes.push(Date.now());
    }).observe(document.body, { childList: true, subtree: true });
  });
  step('appointment open');

  const latencies = [];
  for (let k = 1; k <= IMAGES; k++) {
    const sentAt = Number(await expectLine('GATEWAY image'));
    await appointment.waitForFunction((n) => window.thumbTimes.length >= n, k, { timeout: 60000 });
    latencies.push((await appointment.evaluate((n) => window.thumbTimes[n - 1], k)) - sentAt);
    if (k === 4) {
      for (const slot of ['RCC', 'RMLO', 'LCC', 'LMLO']) {
        await appointment.waitForSelector(`#gallery img[alt="${slot} image"]`, { timeout: 10000 });
      }
      await appointment.waitForFunction(() => [...document.querySelectorAll('#gallery img.app-thumb')].every((i) => i.complete && i.naturalWidth > 0));
      // Images have arrived: the tag moved up beside the participant's name, out of the inset.
      await appointment.waitForSelector('h1 #heading-status [data-status="in_progress"]', { timeout: 10000 });
      if (await appointment.$('#inset-status')) throw new Error('"Awaiting images" after images arrived');
      await appointment.screenshot({ path: join(ARTIFACTS, '2-appointment-four-images.png'), fullPage: true });
      step('four thumbnails');
    }
    step(`image ${k}`);
  }
  latencies.sort((a, b) => a - b);
  const p50 = latencies[Math.floor((latencies.length - 1) / 2)];
  const p99 = latencies[Math.ceil(0.99 * latencies.length) - 1];
  step(`latency p50=${p50}ms p99=${p99}ms min=${latencies[0]}ms max=${latencies[latencies.length - 1]}ms n=${latencies.length}`);

  await expectLine('GATEWAY completed');
  await statusIs(clinic, appointmentId, 'complete');
  await appointment.waitForSelector('#appointment-status [data-status="complete"]', { timeout: 60000 });
  await clinic.screenshot({ path: join(ARTIFACTS, '3-clinic-complete.png'), fullPage: true });
  step('complete');

  // With ARCHIVE set, the stand-in gateway reports the hospital PACS's state of three images:
  // 1 confirmed stored, 2 refused (with the PACS's reason, also on the timeline), 3 sent (a
  // refusal reported earlier than that must not overwrite it).
  if (env('ARCHIVE', '')) {
    await expectLine('GATEWAY archived');
    const tag = async (state) => {
      return appointment.waitForSelector(`#gallery .app-archive[data-archive-state="${state}"]:has-text("HOSPITAL_PACS")`, { timeout: 60000 });
    };
    const committed = await tag('committed');
    const failed = await tag('failed');
    await tag('forwarded');
    const words = async (e) => (await e.textContent()).replace(/\s+/g, ' ').trim();
    if (!(await words(committed)).startsWith('In PACS HOSPITAL_PACS')) throw new Error(`committed reads "${await words(committed)}"`);
    const refused = await words(failed);
    if (!refused.startsWith('Not in PACS HOSPITAL_PACS') || !refused.includes('0xA700')) throw new Error(`refused reads "${refused}"`);
    const counts = await appointment.evaluate(() => ['committed', 'failed', 'forwarded'].map((s) => document.querySelectorAll(`#gallery .app-archive[data-archive-state="${s}"]`).length));
    if (counts.join() !== '1,1,1') throw new Error(`archive tags committed,failed,forwarded = ${counts}`);
    await appointment.waitForSelector('#timeline li:has-text("not archived at HOSPITAL_PACS")', { timeout: 60000 });
    if (await appointment.$('#timeline li:has-text("an older report")')) throw new Error('a stale refusal reached the timeline');
    await axe(appointment, 'appointment with archive states');
    step(`archive ${counts}`);
  }

  // With TAKEN set (the stand-in gateway lists the images taken in MPPS COMPLETED, one more than
  // it sends): "n taken, m received" with the shortfall flagged; then an image matching no
  // appointment shows in the clinics page's "Unmatched images" with its patient details.
  const TAKEN = env('TAKEN', '');
  if (TAKEN) {
    const expected = `${TAKEN} taken, ${IMAGES} received`;
    const count = await appointment.waitForSelector(`#image-count[data-taken="${TAKEN}"]`, { timeout: 60000 });
    const text = (await count.textContent()).replace(/\s+/g, ' ').trim();
    if (!text.startsWith(expected) || !text.includes(`${Number(TAKEN) - IMAGES} not received yet`)) {
      throw new Error(`image count reads "${text}", expected "${expected}" and the shortfall`);
    }
    step(`count ${text}`);
    const stray = await expectLine('GATEWAY stray');
    const [accession, patientId] = stray.split(' ');
    const clinics = await north.newPage();
    watch(clinics);
    await clinics.goto(`${BASE}/clinics`);
    await hydrated(clinics);
    const row = await clinics.waitForSelector(`#unmatched-images tr:has-text("${accession}")`, { timeout: 60000 });
    const rowText = await row.textContent();
    if (!rowText.includes(patientId) || !rowText.includes('TEST^PATIENT')) {
      throw new Error(`unmatched row lacks the patient details: ${rowText}`);
    }
    const refused = await clinics.waitForSelector('#refused-images tr:has-text("STRAY_MODALITY")', { timeout: 60000 });
    if (!(await refused.textContent()).includes('C-STORE status 0x0122')) {
      throw new Error(`refused row lacks the reason: ${await refused.textContent()}`);
    }
    await axe(clinics, 'clinics with unmatched and refused images');
    await clinics.screenshot({ path: join(ARTIFACTS, '3-unmatched.png'), fullPage: true });
    step('unmatched');
    await clinics.close();
  }

  for (const [path, name] of [['/gateways', 'gateways'], ['/actions', 'actions']]) {
    const page = await north.newPage();
    await page.goto(`${BASE}${path}`);
    await live(page);
    await axe(page, name);
    await page.screenshot({ path: join(ARTIFACTS, `4-${name}.png`), fullPage: true });
    await page.close();
  }
  const actions = await north.newPage();
  // Every live-update stream the app opens, with how many listeners it has, so we can check that
  // a page closes its stream and removes its listeners when it goes.
  await actions.addInitScript(() => {
    const Native = window.EventSource;
    window.liveSources = [];
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        this.listening = 0;
        window.liveSources.push(this);
      }
      addEventListener(...args) { this.listening += 1; return super.addEventListener(...args); }
      removeEventListener(...args) { this.listening -= 1; return super.removeEventListener(...args); }
    };
  });
  await actions.goto(`${BASE}/actions?status=confirmed`);
  await live(actions);
  if (!(await actions.$('#actions [data-status="confirmed"]'))) throw new Error('no confirmed action listed');
  step('actions listed');
  await Promise.all([
    actions.waitForURL('**/actions/*'),
    actions.click('#actions tr[data-status="confirmed"] a[href^="/actions/"]'),
  ]);
  await actions.waitForSelector('#action[data-status="confirmed"]');
  await actions.waitForSelector('#live[data-live="connected"]');
  // The list page left (a client-side navigation): its stream is closed with no listener left;
  // the action page's own stream is the only one open.
  const streams = await actions.evaluate(() => window.liveSources.map((s) => ({
    closed: s.readyState === EventSource.CLOSED, listening: s.listening, onerror: s.onerror !== null,
  })));
  const open = streams.filter((s) => !s.closed);
  const leftovers = streams.filter((s) => s.closed && (s.listening !== 0 || s.onerror));
  if (streams.length < 2 || open.length !== 1 || open[0].listening === 0 || leftovers.length) {
    throw new Error(`live streams after leaving the actions page: ${JSON.stringify(streams)}`);
  }
  step(`left page closed its stream (${streams.length} opened, 1 open)`);
  await axe(actions, 'action');
  await actions.screenshot({ path: join(ARTIFACTS, '4-action.png'), fullPage: true });

  const south = await browser.newContext();
  const other = await signIn(south, env('USER2'), env('PASS2'));
  const response = await other.goto(`${BASE}/appointments/${appointmentId}`);
  if (response.status() !== 404) throw new Error(`other provider got ${response.status()}, not 404`);
  await other.waitForSelector('h1:has-text("Page not found")');
  await other.screenshot({ path: join(ARTIFACTS, '5-other-provider-404.png'), fullPage: true });
  step('other provider 404');

  if (errors.length) throw new Error(`page errors:\n${errors.join('\n')}`);
  console.log('RESULT 1 passed, 0 failed');
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
  for (const ctx of browser.contexts()) {
    for (const [i, page] of ctx.pages().entries()) {
      await page.screenshot({ path: join(ARTIFACTS, `failure-${i}.png`), fullPage: true }).catch(() => {});
    }
  }
  console.log('RESULT 0 passed, 1 failed');
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
