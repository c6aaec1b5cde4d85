// The dashboard of a production server (`reactive serve` with REACTIVE_ADMIN_KEY) in headless
// Chromium: the page first shows only the form asking for the admin key; a wrong key is
// refused; the right one opens the live dashboard, which keeps working after a reload (the
// key is entered once).
//
// usage: node dashboard_sign_in.mjs <server url> '<json params>'
// params: {executablePath, screenshotDir, timeoutMs, adminKey}
// Prints one JSON line with what the page showed; exits 1 if a step fails.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, paramsText] = process.argv.slice(2);
const params = JSON.parse(paramsText);

async function main() {
  mkdirSync(params.screenshotDir, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "dashboard-sign-in-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: params.executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    viewport: { width: 1200, height: 700 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(params.timeoutMs);
  const result = { screenshots: [] };
  try {
    const first = await page.goto(`${url}/_dashboard/`);
    result.firstStatus = first.status();
    result.formFields = await page.$$eval("input", (inputs) => inputs.map((input) => input.name));
    result.screenshots.push(join(params.screenshotDir, "dashboard-sign-in.png"));
    await page.screenshot({ path: result.screenshots.at(-1) });

    await page.fill("input[name=key]", "not the key");
    await page.click("button[type=submit]");
    await page.waitForSelector("[role=alert]");
    result.wrongKeyMessage = await page.textContent("[role=alert]");

    await page.fill("input[name=key]", params.adminKey);
    await page.click("button[type=submit]");
    await page.waitForSelector('body[data-state="ready"][data-tables-loaded="true"]');
    result.tablesAfterSignIn = await page.$$eval("#tables button", (b) => b.map((x) => x.dataset.table));
    await page.reload();
    await page.waitForSelector('body[data-state="ready"][data-tables-loaded="true"]');
    result.readyAfterReload = true;
    result.screenshots.push(join(params.screenshotDir, "dashboard-signed-in.png"));
    await page.screenshot({ path: result.screenshots.at(-1) });
    console.log(JSON.stringify(result));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error?.stack ?? error);
  process.exit(1);
});
