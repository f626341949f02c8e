// The hub web UI in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core from
// hub/web/node_modules). Run by tests/e2e/hub_web_test.sh, which seeds the hub and passes:
//   HUB_URL (http://127.0.0.1:PORT), HUB (127.0.0.1:PORT), ALICE_TOKEN (admin, owns alice/* and
//   the org acme), BOB_TOKEN (owns the private bob/secret-filter, maintains acme),
//   EXPECT_DOWNLOADS, SCREENSHOT_DIR, CHROMIUM, HUB_WEB_MODULES.
// Every wait is bounded; a failure prints the step, the page's URL and text, the browser's
// console errors, and saves failure.png.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`ui_test: set ${name}`);
    process.exit(2);
  }
  return v;
};
const HUB_URL = env('HUB_URL');
const HUB = env('HUB');
const ALICE = env('ALICE_TOKEN');
const BOB = env('BOB_TOKEN');
const EXPECT_DOWNLOADS = env('EXPECT_DOWNLOADS');
const SHOTS = env('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// playwright-core lives in hub/web's node_modules (one npm ci for the UI and its test).
const require = createRequire(path.join(env('HUB_WEB_MODULES'), '..', 'package.json'));
const { chromium } = require('playwright-core');

const STEP_TIMEOUT_MS = 5000; // any single wait
const TOTAL_TIMEOUT_MS = 90000; // the whole run
mkdirSync(SHOTS, { recursive: true });

const consoleErrors = [];
const pageErrors = [];
let browser;
let page;
let currentStep = 'start-up';

const watchdog = setTimeout(() => fail(new Error(`the whole UI test took over ${TOTAL_TIMEOUT_MS / 1000} s`)), TOTAL_TIMEOUT_MS);

async function fail(err) {
  console.error(`FAIL (ui): ${currentStep}: ${err && err.message ? err.message : err}`);
  if (page) {
    try {
      console.error(`  page: ${page.url()}`);
      const text = await page.evaluate(() => document.body.innerText).catch(() => '(unreadable)');
      console.error(`  page text:\n${indent(text.slice(0, 3000))}`);
      await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true, timeout: 5000 });
      console.error(`  screenshot: ${path.join(SHOTS, 'failure.png')}`);
    } catch (e) {
      console.error(`  (could not read the page: ${e.message})`);
    }
  }
  if (consoleErrors.length) console.error(`  browser console errors:\n${indent(consoleErrors.join('\n'))}`);
  if (pageErrors.length) console.error(`  page exceptions:\n${indent(pageErrors.join('\n'))}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}

const indent = (s) => s.split('\n').map((l) => `    ${l}`).join('\n');

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, fn) {
  currentStep = name;
  await fn();
  console.log(`ok (ui): ${name}`);
}

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Waits for the main region to hold a rendered page (not the loading state). */
async function ready() {
  await page.waitForFunction(() => {
    const main = document.getElementById('main');
    return main && !main.hasAttribute('aria-busy') && !main.querySelector(':scope > .loading');
  }, null, { timeout: STEP_TIMEOUT_MS });
}

async function go(pathname) {
  await page.goto(HUB_URL + pathname, { waitUntil: 'domcontentloaded' });
  await ready();
}

const text = (selector) => page.locator(selector).first().innerText({ timeout: STEP_TIMEOUT_MS });

/** The status of GET /api/v1/user with a token, asked from inside the page (as the UI would). */
const userStatus = (token) => page.evaluate(async (t) => {
  const res = await fetch('/api/v1/user', { headers: { Authorization: `Bearer ${t}` } });
  return { status: res.status, body: await res.text() };
}, token);

async function logInWith(token) {
  await go('/login');
  await page.fill('input[name=token]', token);
  await page.click('form button[type=submit]');
}

async function logOut() {
  await page.click('header button:has-text("Log out")');
  await page.waitForSelector('header a:has-text("Log in")', { timeout: STEP_TIMEOUT_MS });
}

async function main() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 20000,
    // Tests run as root, where Chromium's sandbox cannot start; the pages are our own.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-proxy-server'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: HUB_URL });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(10000);
  page = await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('dialog', (d) => d.dismiss()); // the UI opens none; a README must not either

  await step('anonymous search lists public extensions only', async () => {
    await go('/');
    await page.waitForSelector('.ext-card[data-name="alice/greeter"]');
    check(await page.locator('.ext-card[data-name="acme/tool"]').count() === 1, 'acme/tool is not listed');
    check(await page.locator('.ext-card[data-name="bob/secret-filter"]').count() === 0, 'the private bob/secret-filter is listed anonymously');
    await page.fill('input[type=search]', 'greeter');
    await page.waitForFunction(() => document.querySelector('[data-testid=result-count]')?.textContent.includes('for “greeter”'));
    const cards = await page.locator('.ext-card').evaluateAll((els) => els.map((e) => e.dataset.name));
    check(cards.includes('alice/greeter'), `search "greeter" found ${JSON.stringify(cards)}`);
    check(!cards.includes('acme/tool'), `search "greeter" also found ${JSON.stringify(cards)}`);
    const card = await text('.ext-card[data-name="alice/greeter"]');
    for (const want of ['Greets every response with an x-wasm header.', 'v2', '0.2.1', 'Downloads']) {
      check(card.includes(want), `the card lacks "${want}": ${card}`);
    }
    check(new URL(page.url()).search === '?q=greeter', `the query is not in the URL: ${page.url()}`);
    await page.fill('input[type=search]', 'secret');
    await page.waitForFunction(() => document.querySelector('[data-testid=result-count]')?.textContent.includes('for “secret”'));
    check(await page.locator('.ext-card').count() === 0, 'searching "secret" anonymously found something');
    await page.fill('input[type=search]', 'greeter');
    await page.waitForSelector('.ext-card[data-name="alice/greeter"]');
    await shot('search');
  });

  await step('the extension page shows what the image holds', async () => {
    await page.click('.ext-card[data-name="alice/greeter"] a'); // client-side navigation
    await page.waitForURL('**/extensions/alice/greeter');
    await ready();
    check((await text('main h1')) === 'alice/greeter', `h1: ${await text('main h1')}`);
    check((await text('[data-testid=description]')) === 'Greets every response with an x-wasm header.',
      `description: ${await text('[data-testid=description]')}`);
    const readme = page.locator('[data-testid=readme]');
    check((await readme.locator('h1').innerText()) === 'Greeter filter', 'README heading');
    check((await readme.locator('h2').innerText()) === 'Features', 'README second heading');
    const items = await readme.locator('ul > li').allInnerTexts();
    check(items.length === 2 && items[0] === 'adds x-wasm: hello', `README list: ${JSON.stringify(items)}`);
    check(await readme.locator('table td').count() === 2, 'README table');
    check(await readme.locator('strong').innerText() === 'every', 'README emphasis');
    const side = await text('.ext-side');
    for (const want of ['0.2.1', 'greeter_root', 'Apache-2.0', 'https://example.com/greeter', 'v2']) {
      check(side.includes(want), `the side panel lacks "${want}": ${side}`);
    }
    check(await page.getAttribute('.ext-side a[href="https://example.com/greeter"]', 'rel') === 'noopener noreferrer nofollow', 'source link rel');
    check((await text('[data-testid=downloads]')) === EXPECT_DOWNLOADS, `downloads: ${await text('[data-testid=downloads]')}, want ${EXPECT_DOWNLOADS}`);
    const hostFns = await text('[data-testid=host-functions]');
    for (const fn of ['proxy_log', 'proxy_get_header_map_value', 'proxy_send_local_response']) {
      check(hostFns.includes(fn), `host functions lack ${fn}: ${hostFns}`);
    }
    check(await page.locator('.chip.missing').count() === 0, 'greeter shows a missing import');
    const tags = await text('[data-testid=tags]');
    check(tags.includes('v1') && tags.includes('v2'), `tags: ${tags}`);
    const versionRows = page.locator('[data-testid=versions] tbody tr');
    check(await versionRows.count() === 2, `versions: ${await versionRows.count()} rows`);
    const newest = await versionRows.first().innerText();
    for (const want of ['sha256:', 'v2', '0.2.1', 'greeter_root', '1.1 KiB', 'oci', 'alice']) {
      check(newest.includes(want), `the newest version row lacks "${want}": ${newest}`);
    }
    const ref = `${HUB}/alice/greeter:v2`;
    const snip = async (id) => page.locator(`[data-snippet=${id}] pre`).innerText();
    const pull = await snip('pull');
    check(pull.startsWith(`sluice ext pull ${ref}`), `pull snippet: ${pull}`);
    const deploy = await snip('deploy');
    check(deploy.startsWith(`sluice ext deploy ${ref} --to http://127.0.0.1:9901`), `deploy snippet: ${deploy}`);
    const envoy = await snip('envoy');
    for (const want of [`uri: "oci://${ref}"`, 'envoy.filters.http.wasm', 'runtime: envoy.wasm.runtime.v8', 'root_id: "greeter_root"', 'http_filters:']) {
      check(envoy.includes(want), `the Envoy snippet lacks ${want}:\n${envoy}`);
    }
    const istio = await snip('istio');
    for (const want of ['apiVersion: extensions.istio.io/v1alpha1', 'kind: WasmPlugin', `url: "oci://${ref}"`,
      'failStrategy: FAIL_CLOSE', 'pluginConfig:', 'phase:', 'pluginName: "greeter_root"']) {
      check(istio.includes(want), `the Istio snippet lacks ${want}:\n${istio}`);
    }
    check(!/^\s*sha256:\s*\S/m.test(istio), `the Istio snippet has a sha256:\n${istio}`);
    check(await page.locator('[data-testid=visibility]').count() === 0, 'an anonymous visitor gets the visibility toggle');
    // The Copy button puts the snippet on the clipboard.
    await page.click('[data-snippet=pull] button:has-text("Copy")');
    await page.waitForSelector('[data-snippet=pull] .copy-status:has-text("Copied")');
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    check(clip === pull, `clipboard: ${clip}`);
    await shot('extension');
  });

  await step('the hostile README does nothing', async () => {
    await page.mouse.move(10, 10);
    await page.hover('[data-testid=readme] p:has-text("hover"), [data-testid=readme] div:has-text("hover")').catch(() => {});
    await page.waitForTimeout(300); // an onerror or a blocked script would have run by now
    const probe = await page.evaluate(() => {
      const readme = document.querySelector('[data-testid=readme]');
      const attrs = [];
      for (const el of document.querySelectorAll('*')) {
        for (const a of el.attributes) {
          if (/^on/i.test(a.name)) attrs.push(`${el.tagName}.${a.name}`);
          if (/^\s*javascript:/i.test(a.value)) attrs.push(`${el.tagName}.${a.name}=${a.value}`);
        }
      }
      return {
        xss: window.__xss,
        scripts: readme.querySelectorAll('script').length,
        mainScripts: document.querySelectorAll('main script, #main script').length,
        iframes: readme.querySelectorAll('iframe, form, input, style').length,
        attrs,
        clickMe: [...readme.querySelectorAll('a')].filter((a) => a.textContent.includes('click me') || a.textContent.includes('markdown link'))
          .map((a) => a.getAttribute('href')),
        bodyVisible: getComputedStyle(document.body).display !== 'none',
        img: readme.querySelector('img') ? readme.querySelector('img').outerHTML : null,
      };
    });
    check(probe.xss === undefined, `window.__xss = ${probe.xss}`);
    check(probe.scripts === 0 && probe.mainScripts === 0, 'a <script> is in the page');
    check(probe.iframes === 0, 'an iframe, form, input or style from the README is in the page');
    check(probe.attrs.length === 0, `event handlers or javascript: URLs in the DOM: ${probe.attrs.join(', ')}`);
    check(probe.clickMe.length === 2 && probe.clickMe.every((h) => h === null), `javascript: links kept an href: ${JSON.stringify(probe.clickMe)}`);
    check(probe.bodyVisible, 'the README\'s <style> hid the page');
    check(probe.img === '<img loading="lazy" referrerpolicy="no-referrer">', `the README's relative image: ${probe.img}`);
    // Clicking the defused links does nothing either.
    await page.click('[data-testid=readme] a:has-text("click me")');
    await page.click('[data-testid=readme] a:has-text("markdown link")');
    check(await page.evaluate(() => window.__xss) === undefined, 'a README link ran script');
    check(new URL(page.url()).pathname === '/extensions/alice/greeter', `a README link navigated to ${page.url()}`);
  });

  await step('imports Sluice does not offer are highlighted', async () => {
    await go('/extensions/alice/legacy');
    await page.waitForSelector('.chip.missing');
    const missing = await page.locator('.chip.missing').allInnerTexts();
    check(missing.some((m) => m.includes('proxy_frobnicate_everything') && m.includes('not offered by Sluice')),
      `missing imports: ${JSON.stringify(missing)}`);
    check((await text('[data-testid=wasi-functions]')).includes('fd_write'), 'WASI functions');
    check((await text('.imports')).includes('does not offer'), 'the warning about missing imports');
    await shot('extension-missing-imports');
  });

  await step('an unknown extension and an unknown page say so', async () => {
    await go('/extensions/bob/secret-filter'); // private: anonymous visitors get a 404
    check((await text('main .alert')).length > 0, 'no error shown for a hidden extension');
    await go('/no/such/page');
    check((await text('main h1')) === 'Page not found', 'not-found page');
  });

  await step('a bad token on /login shows the error', async () => {
    await logInWith('slh_0000000000000000_0000000000000000000000000000000000000000');
    await page.waitForSelector('form [role=alert]');
    const err = await text('form [role=alert]');
    check(err.length > 8, `login error: ${err}`);
    check(await page.locator('header a:has-text("Log in")').count() === 1, 'a bad token logged in');
    check(await page.evaluate(() => sessionStorage.length) === 0, 'a bad token was stored');
    await shot('login-error');
  });

  await step('bob logs in and sees his private extension', async () => {
    await page.fill('input[name=token]', BOB);
    await page.click('form button[type=submit]');
    await page.waitForSelector('[data-testid=user-name]:has-text("bob")');
    await page.waitForURL('**/account');
    await ready();
    await shot('account-bob');
    await go('/');
    await page.waitForSelector('.ext-card[data-name="bob/secret-filter"]');
    const card = await text('.ext-card[data-name="bob/secret-filter"]');
    check(card.includes('private'), `the private card has no badge: ${card}`);
    await shot('search-logged-in');
    await page.click('.ext-card[data-name="bob/secret-filter"] a');
    await page.waitForURL('**/extensions/bob/secret-filter');
    await ready();
    const toggle = page.locator('[data-testid=visibility]');
    check((await toggle.innerText()) === 'Make public', `toggle: ${await toggle.innerText()}`);
    await shot('extension-private');
    // Public and back: the API agrees each time.
    await toggle.click();
    await page.waitForSelector('[data-testid=visibility]:has-text("Make private")');
    check((await page.evaluate(async () => (await fetch('/api/v1/extensions/bob/secret-filter')).status)) === 200, 'not public after the toggle');
    await page.click('[data-testid=visibility]');
    await page.waitForSelector('[data-testid=visibility]:has-text("Make public")');
    check((await page.evaluate(async () => (await fetch('/api/v1/extensions/bob/secret-filter')).status)) === 404, 'not private again');
  });

  await step('bob makes a token (shown once), uses it, revokes it', async () => {
    await go('/tokens');
    await page.fill('input[name=description]', 'ui test token');
    await page.selectOption('select[name=scope]', 'read');
    await page.fill('input[name=expires_in_days]', '7');
    await page.click('form button[type=submit]:has-text("Create token")');
    await page.waitForSelector('[data-testid=new-token]');
    const token = await page.inputValue('[data-testid=new-token]');
    check(/^slh_[0-9a-f]+_[0-9a-f]+$/.test(token), `new token: ${token}`);
    await page.waitForSelector('[data-testid=token-list] tr:has-text("ui test token")');
    const row = page.locator('[data-testid=token-list] tr', { hasText: 'ui test token' });
    check((await row.innerText()).includes('read'), `token row: ${await row.innerText()}`);
    await page.click('.secret-box button:has-text("Copy")');
    await page.waitForSelector('.secret-box .copy-status:has-text("Copied")');
    check(await page.evaluate(() => navigator.clipboard.readText()) === token, 'the copied token differs');
    await shot('tokens-created');
    const before = await userStatus(token);
    check(before.status === 200 && before.body.includes('"name":"bob"'), `the new token: ${JSON.stringify(before)}`);
    // Shown once: a fresh visit lists it without the secret.
    await go('/tokens');
    await page.waitForSelector('[data-testid=token-list] tr:has-text("ui test token")');
    check(!(await page.content()).includes(token), 'the token is shown again');
    const revokeRow = page.locator('[data-testid=token-list] tr', { hasText: 'ui test token' });
    await revokeRow.locator('button:has-text("Revoke")').click();
    await revokeRow.locator('button:has-text("Revoke now")').click();
    await page.waitForSelector('[data-testid=token-list] tr:has-text("ui test token")', { state: 'detached' });
    const after = await userStatus(token);
    check(after.status === 401, `the revoked token got ${after.status} ${after.body}`);
    await shot('tokens-revoked');
  });

  await step('an organisation page lists members and extensions', async () => {
    await go('/orgs/acme');
    const members = await text('[data-testid=members]');
    check(/alice\s+owner/.test(members) && /bob\s+maintainer/.test(members), `members: ${members}`);
    await page.waitForSelector('.ext-card[data-name="acme/tool"]');
    const card = await text('.ext-card[data-name="acme/tool"]');
    check(card.includes('v1') && card.includes('0.2.1'), `the org's extension card: ${card}`);
    check(await page.locator('form:has-text("Add a member")').count() === 0, 'a maintainer may manage members');
    await shot('org-maintainer');
    await logOut();
  });

  await step('alice (admin) adds a user, who joins acme', async () => {
    await logInWith(ALICE);
    await page.waitForSelector('[data-testid=user-name]:has-text("alice")');
    await go('/users');
    const users = await text('[data-testid=user-list]');
    check(users.includes('alice') && users.includes('bob'), `users: ${users}`);
    await page.fill('input[name=name]', 'carol');
    await page.click('form button[type=submit]:has-text("Add user")');
    await page.waitForSelector('[data-testid=new-token]');
    const carol = await page.inputValue('[data-testid=new-token]');
    check(carol.startsWith('slh_'), `carol's token: ${carol}`);
    await page.waitForSelector('[data-testid=user-list] td:text-is("carol")');
    await shot('users');
    check((await userStatus(carol)).status === 200, 'carol\'s token does not work');

    await go('/orgs/acme');
    await page.fill('input[name=user]', 'carol');
    await page.selectOption('select[name=role]', 'reader');
    await page.click('form button[type=submit]:has-text("Add member")');
    await page.waitForSelector('[data-testid=members] tr:has-text("carol")');
    const role = await page.locator('[data-testid=members] tr:has-text("carol") select').inputValue();
    check(role === 'reader', `carol's role: ${role}`);
    // An error from the API is shown: adding someone who does not exist.
    await page.fill('input[name=user]', 'nobody-here');
    await page.click('form button[type=submit]:has-text("Add member")');
    await page.waitForSelector('form [role=alert]');
    await shot('org-owner');
  });

  await step('the audit log and the account page', async () => {
    await go('/audit');
    await page.waitForSelector('[data-testid=audit] table');
    const log = await text('[data-testid=audit]');
    check(log.includes('push') && log.includes('alice/greeter'), `audit log: ${log.slice(0, 500)}`);
    await shot('audit');
    await go('/account');
    const account = await text('main');
    check(account.includes('administrator') && account.includes('acme'), `account: ${account}`);
    await shot('account-alice');
    await logOut();
  });

  // A narrow screen: the layout still works (no horizontal scrolling of the page).
  await step('the extension page on a phone-sized screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await go('/extensions/alice/greeter');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    check(overflow <= 1, `the page scrolls sideways by ${overflow}px`);
    await shot('extension-mobile');
  });

  // Chromium reports the README's onerror/onmouseover attributes as CSP violations while
  // DOMPurify parses them in its inert document (they are removed before anything reaches the
  // page, as the checks above show). Any other violation means the bundle breaks the hub's CSP.
  const csp = consoleErrors.filter((m) => /Content Security Policy|Refused to/i.test(m) &&
    !m.startsWith('Executing inline event handler violates'));
  currentStep = 'no script errors';
  check(csp.length === 0, `CSP violations:\n${csp.join('\n')}`);
  check(pageErrors.length === 0, `uncaught exceptions:\n${pageErrors.join('\n')}`);
  await browser.close();
  browser = null;
  clearTimeout(watchdog);
  console.log(`ok (ui): screenshots in ${SHOTS}`);
}

main().catch(fail);
