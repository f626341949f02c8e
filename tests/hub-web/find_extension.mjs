// One step of the extension-project flow (tests/e2e/ext_project_test.sh) done as a user does it:
// type a query into the hub's search page in headless Chromium, open the result named NAME and
// check that its page shows TEXT (the project's description). Saves a screenshot of that page.
//   node find_extension.mjs HUB_URL QUERY NAME TEXT SCREENSHOT
// Needs hub/web's node_modules (playwright-core) and Debian's chromium; every wait is bounded.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [hubUrl, query, name, text, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: find_extension.mjs HUB_URL QUERY NAME TEXT SCREENSHOT');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'hub', 'web', 'package.json'));
const { chromium } = require('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 20000,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-proxy-server'],
});
let page;
try {
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(8000);
  await page.goto(hubUrl + '/', { timeout: 10000 });
  await page.fill('input[type=search]', query);
  await page.press('input[type=search]', 'Enter');
  await page.click(`.ext-card[data-name="${name}"] a`);
  await page.waitForURL(`**/extensions/${name}`);
  await page.getByText(text).first().waitFor();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`found ${name} by searching "${query}"; its page shows "${text}"`);
} catch (err) {
  console.error(`find_extension: ${err.message.split('\n')[0]}`);
  if (page) console.error(`page ${page.url()}: ${(await page.innerText('body').catch(() => '')).slice(0, 600)}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
