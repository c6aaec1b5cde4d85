// Two headless Chromium browsers (Debian's /usr/bin/chromium, each with a fresh profile) on the
// taskboard example, signed in as the same dev user on the same board: a task created in A
// appears in B's "To do" column; moved to "Done" in B, it moves in A. Saves a screenshot of each.
//
// usage: node two_browsers.mjs <server url> '<json params>'
// params: {executablePath, screenshotDir, subject, name, project, task, timeoutMs}
// Prints one JSON line with what each page showed; exits 1 (after failure screenshots) if a
// step times out. The page's Convex bundle is answered from this package's node_modules.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
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
const BUNDLE = join(
  dirname(createRequire(import.meta.url).resolve("convex/package.json")),
  "dist",
  "browser.bundle.js",
);

const [url, paramsText] = process.argv.slice(2);
const params = JSON.parse(paramsText);
const board = `${url}/examples/taskboard/`;
const task = (column) => `[data-column="${column}"] .task:has-text(${JSON.stringify(params.task)})`;

async function openBrowser(name) {
  const profile = mkdtempSync(join(tmpdir(), `taskboard-${name}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: params.executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 700 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(params.timeoutMs);
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  await page.route("**/node_modules/convex/dist/browser.bundle.js", (route) =>
    route.fulfill({ path: BUNDLE, contentType: "text/javascript" }),
  );
  return { name, context, page, profile, problems };
}

async function signIn(page, address) {
  await page.goto(address);
  await page.waitForSelector("#sign-in-form", { state: "visible" });
  await page.fill("#sign-in-form [name=subject]", params.subject);
  await page.fill("#sign-in-form [name=name]", params.name);
  await page.fill("#sign-in-form [name=email]", `${params.subject}@example.test`);
  await page.click("#sign-in-form button[type=submit]");
  await page.waitForSelector('body[data-state="signed-in"]');
}

async function boardLoaded(page) {
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".column")].every((column) => column.dataset.loaded === "true"),
  );
}

/** Titles per column, as the page shows them. */
function columns(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll(".column")].map((column) => [
        column.dataset.column,
        [...column.querySelectorAll(".task .title")].map((title) => title.textContent),
      ]),
    ),
  );
}

async function screenshot(browser, label) {
  const path = join(params.screenshotDir, `taskboard-${label}-${browser.name}.png`);
  await browser.page.screenshot({ path, fullPage: true });
  return path;
}

async function run(a, b) {
  const timings = {};
  await signIn(a.page, board);
  await a.page.fill("#new-project [name=name]", params.project);
  await a.page.click("#new-project button[type=submit]");
  await a.page.waitForFunction(() => location.hash.startsWith("#project="));
  const projectId = (await a.page.evaluate(() => location.hash)).slice("#project=".length);
  await boardLoaded(a.page);

  await signIn(b.page, `${board}#project=${projectId}`);
  await boardLoaded(b.page);
  const projectNameInB = await b.page.textContent("#project-name");

  await a.page.fill("#new-task [name=title]", params.task);
  let started = Date.now();
  await a.page.click("#new-task button[type=submit]");
  await b.page.waitForSelector(task("todo"));
  timings.createdInASeenInB = Date.now() - started;
  const taskId = await b.page.getAttribute(task("todo"), "data-task-id");
  const afterCreate = { a: await columns(a.page), b: await columns(b.page) };

  started = Date.now();
  await b.page.click(`${task("todo")} button[data-move="done"]`);
  await a.page.waitForSelector(task("done"));
  await a.page.waitForSelector(task("todo"), { state: "detached" });
  timings.movedInBSeenInA = Date.now() - started;
  await b.page.waitForSelector(task("done"));
  const afterMove = { a: await columns(a.page), b: await columns(b.page) };
  const screenshots = [await screenshot(a, "final"), await screenshot(b, "final")];
  return { projectId, projectNameInB, taskId, afterCreate, afterMove, timings, screenshots };
}

async function main() {
  mkdirSync(params.screenshotDir, { recursive: true });
  const browsers = [await openBrowser("a"), await openBrowser("b")];
  try {
    const result = await run(...browsers);
    result.problems = browsers.flatMap((browser) => browser.problems);
    console.log(JSON.stringify(result));
  } catch (error) {
    for (const browser of browsers) {
      const path = await screenshot(browser, "failure").catch(() => "(none)");
      console.error(`browser ${browser.name}: screenshot ${path}; ${browser.problems.join("; ")}`);
    }
    throw error;
  } finally {
    for (const browser of browsers) {
      await browser.context.close();
      rmSync(browser.profile, { recursive: true, force: true });
    }
  }
}

main().catch((error) => {
  console.error(error?.stack ?? error);
  process.exit(1);
});
