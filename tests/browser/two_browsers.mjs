// Two headless Chromium browsers (Debian's /usr/bin/chromium, each with a fresh profile) on the
// taskboard example, signed in as the same dev user on the same board: a task created in A
// appears in B's "To do" column; moved to "Done" in B, it moves in A. Saves a screenshot of each.
//
// usage: node two_browsers.mjs <server url> '<json params>'
// params: {executablePath, screenshotDir, subject, name, project, task, timeoutMs}
// Prints one JSON line with what each page showed; exits 1 (after failure screenshots) if a
// step times out. The page's Convex bundle is answered from this package's node_modules.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { browsers, scriptArguments } from "./browsers.mjs";

const BUNDLE = join(
  dirname(createRequire(import.meta.url).resolve("convex/package.json")),
  "dist",
  "browser.bundle.js",
);

const { url, params } = scriptArguments();
const board = `${url}/examples/taskboard/`;
const task = (column) => `[data-column="${column}"] .task:has-text(${JSON.stringify(params.task)})`;
const { screenshot, runInTwo } = browsers({
  app: "taskboard",
  params,
  viewport: { width: 1100, height: 700 },
  fullPage: true,
  preparePage: (page) =>
    page.route("**/node_modules/convex/dist/browser.bundle.js", (route) =>
      route.fulfill({ path: BUNDLE, contentType: "text/javascript" }),
    ),
});

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

runInTwo(run);
