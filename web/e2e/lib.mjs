// What the browser tests share: settings from the environment, the `STEP …` / `GATEWAY …` line
// protocol with web/tests/browser.rs, waiting for a hydrated page with its live stream, stamping
// thumbnails as they enter the DOM, an axe accessibility check, and Chromium as the tests run it.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
// The next line from the Rust side, which must start with `prefix`; returns the rest.
export async function expectLine(prefix) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${prefix}`);
  if (!value.startsWith(prefix)) throw new Error(`expected ${prefix}, got ${value}`);
  return value.slice(prefix.length).trim();
}
export const step = (text) => console.log(`STEP ${text}`);

// Page errors collected for the final check.
export const errors = [];
// Everything else the page said went wrong, printed only when the test fails (a page that never
// hydrates shows why here: a failed wasm fetch, a panic).
const diagnostics = [];
export function watch(page) {
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Content-Security-Policy/i.test(m.text())) {
      errors.push(`${page.url()}: CSP: ${m.text()}`);
    } else if ((m.type() === 'error' || m.type() === 'warning') && !/ERR_NAME_NOT_RESOLVED/.test(m.text())) {
      diagnostics.push(`${page.url()}: console ${m.type()}: ${m.text()}`);
    }
  });
  // The NHS fonts come from assets.nhs.uk, which this closed network cannot resolve.
  page.on('requestfailed', (r) => {
    if (!r.url().startsWith('https://assets.nhs.uk/')) {
      diagnostics.push(`${r.url()}: request failed: ${r.failure()?.errorText}`);
    }
  });
}
// Signs `page` in through the sign-in form at `base` and waits for the clinics list.
export async function signIn(page, base, user, pass) {
  await page.goto(`${base}/sign-in`);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60000 });
  await page.fill('#email', user);
  await page.fill('#password', pass);
  await Promise.all([page.waitForURL('**/clinics'), page.click('#sign-in')]);
}
export async function live(page) {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 60000 });
  await page.waitForSelector('#live[data-live="connected"]', { timeout: 60000 });
}

// From now on, `window.thumbTimes[k - 1]` is when (Date.now()) the page's k-th thumbnail entered
// the DOM: the moment the clinician could see it.
export async function stampThumbnails(page) {
  await page.evaluate(() => {
    window.thumbTimes = [];
    const count = () => document.querySelectorAll('#gallery img.app-thumb').length;
    new MutationObserver(() => {
      while (window.thumbTimes.length < count()) window.thumbTimes.push(Date.now());
    }).observe(document.body, { childList: true, subtree: true });
  });
}

const here = dirname(fileURLToPath(import.meta.url));
const axeSource = readFileSync(join(here, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
export async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) throw new Error(`axe: serious/critical violations on ${name}: ${bad.map((v) => v.id).join(', ')}`);
}

export function launch() {
  return chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Runs `body(browser)`, prints the RESULT line browser.rs reads, screenshots every page on a
// failure, and exits with the outcome.
export async function run(artifacts, body) {
  const browser = await launch();
  let failed = false;
  try {
    await body(browser);
    if (errors.length) throw new Error(`page errors:\n${errors.join('\n')}`);
    console.log('RESULT 1 passed, 0 failed');
  } catch (e) {
    failed = true;
    console.error(`FAILED: ${e.stack || e}`);
    for (const line of [...errors, ...diagnostics]) console.error(`  ${line}`);
    for (const ctx of browser.contexts()) {
      for (const [i, p] of ctx.pages().entries()) {
        await p.screenshot({ path: join(artifacts, `failure-${i}.png`), fullPage: true }).catch(() => {});
      }
    }
    console.log('RESULT 0 passed, 1 failed');
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}
