// What the two-browser scripts (two_browsers.mjs, dashboard.mjs) share: the command line, headless
// Chromium (Debian's) with a fresh profile per browser, each page's errors collected, screenshots,
// and the run itself: two browsers, one JSON line of results on stdout, or failure screenshots
// and exit 1.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The command line every script takes: `node <script>.mjs <server url> '<json params>'`. */
export function scriptArguments() {
  const [url, paramsText] = process.argv.slice(2);
  return { url, params: JSON.parse(paramsText) };
}

/**
 * Browsers for one script: `app` names their profiles and screenshots, `params` are the
 * script's (executablePath, screenshotDir, timeoutMs), `preparePage(page)` runs before the
 * page is handed over (routes, for instance).
 */
export function browsers({ app, params, viewport, fullPage, preparePage = async () => {} }) {
  async function open(name) {
    const profile = mkdtempSync(join(tmpdir(), `${app}-${name}-`));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: params.executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(params.timeoutMs);
    // Console errors and uncaught exceptions fail no step by themselves: the test asserts on them.
    const problems = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    await preparePage(page);
    return { name, context, page, profile, problems };
  }

  /** A screenshot of `browser`'s page, `<app>-<label>-<browser>.png`: its path. */
  async function screenshot(browser, label) {
    const path = join(params.screenshotDir, `${app}-${label}-${browser.name}.png`);
    await browser.page.screenshot({ path, fullPage });
    return path;
  }

  /**
   * `run(a, b)` in two fresh browsers: prints its result (with every page's problems) as one
   * JSON line; on a failure screenshots each page and exits 1. The profiles are removed.
   */
  async function runInTwo(run) {
    mkdirSync(params.screenshotDir, { recursive: true });
    const opened = [await open("a"), await open("b")];
    try {
      const result = await run(...opened);
      result.problems = opened.flatMap((browser) => browser.problems);
      console.log(JSON.stringify(result));
    } catch (error) {
      for (const browser of opened) {
        const path = await screenshot(browser, "failure").catch(() => "(none)");
        console.error(`browser ${browser.name}: screenshot ${path}; ${browser.problems.join("; ")}`);
      }
      throw error;
    } finally {
      for (const browser of opened) {
        await browser.context.close();
        rmSync(browser.profile, { recursive: true, force: true });
      }
    }
  }

  return {
    screenshot,
    runInTwo: (run) =>
      runInTwo(run).catch((error) => {
        console.error(error?.stack ?? error);
        process.exit(1);
      }),
  };
}
