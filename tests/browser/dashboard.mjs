// The dashboard in headless Chromium (Debian's /usr/bin/chromium) against a real `reactive dev`
// of the seed app whose `users` table holds 1,000 seeded rows. Page A opens the dashboard, sees
// the tables, pages through every user, edits one (page B, watching the same table, updates
// live), tries an invalid edit (refused with the schema's message, nothing changed), runs
// `users:store` and `projects:create` as a chosen user and sees the project row appear, and
// finds the call in the logs view. Saves a screenshot of each view.
//
// usage: node dashboard.mjs <server url> '<json params>'
// params: {executablePath, screenshotDir, timeoutMs, seeded, subject}
// Prints one JSON line with what the pages showed; exits 1 (after failure screenshots) if a
// step fails.

import { browsers, scriptArguments } from "./browsers.mjs";

const { url, params } = scriptArguments();
const dashboard = `${url}/_dashboard/`;
const { screenshot, runInTwo } = browsers({
  app: "dashboard",
  params,
  viewport: { width: 1400, height: 900 },
  fullPage: false,
});

async function openTable(page, table) {
  await page.goto(dashboard);
  await page.waitForSelector('body[data-state="ready"][data-tables-loaded="true"]');
  await page.click(`#tables button[data-table="${table}"]`);
  await page.waitForSelector('body[data-page-loaded="true"][data-page-number="1"]');
}

/** The ids in the grid, in order. */
function gridIds(page) {
  return page.$$eval("#rows tbody tr", (rows) => rows.map((row) => row.dataset.id));
}

function cell(page, id, field) {
  return page.textContent(`#rows tbody tr[data-id="${id}"] td[data-field="${field}"]`);
}

async function run(a, b) {
  const result = { screenshots: [], timings: {}, xssProbeShownAsText: false };
  await openTable(a.page, "users");
  await a.page.waitForSelector(`#tables button[data-table="users"][data-count="${params.seeded}"]`);
  await a.page.waitForFunction(() => [...document.querySelectorAll("#tables button")].every((b) => b.dataset.count !== ""));
  result.tables = await a.page.$$eval("#tables button", (buttons) =>
    buttons.map((button) => [button.dataset.table, Number(button.dataset.count)]),
  );
  result.screenshots.push(await screenshot(a, "data"));

  // Page through every row.
  const seen = new Set();
  let pages = 0;
  for (;;) {
    pages += 1;
    for (const id of await gridIds(a.page)) seen.add(id);
    // The oldest user's name is markup: shown as text, never run.
    result.xssProbeShownAsText ||= await a.page.evaluate(
      (probe) => [...document.querySelectorAll('#rows td[data-field="name"]')].some((cell) => cell.textContent === probe),
      params.xssProbe,
    );
    if (await a.page.isDisabled("#next-page")) break;
    await a.page.click("#next-page");
    await a.page.waitForSelector(`body[data-page-loaded="true"][data-page-number="${pages + 1}"]`);
  }
  result.pwned = await a.page.evaluate(() => document.body.dataset.pwned ?? null);
  result.pagedRows = seen.size;
  result.pages = pages;
  await a.page.click("#prev-page");
  await a.page.waitForSelector(`body[data-page-loaded="true"][data-page-number="${pages - 1}"]`);
  result.backOnePage = Number(await a.page.evaluate(() => document.body.dataset.pageNumber));
  await openTable(a.page, "users");

  // B watches the same table; A edits its first row.
  await openTable(b.page, "users");
  const [target] = await gridIds(a.page);
  result.nameBefore = await cell(b.page, target, "name");
  await a.page.click(`#rows tbody tr[data-id="${target}"]`);
  await a.page.waitForSelector('#document[data-loaded="true"]');
  await a.page.click("#edit-document");
  const fields = JSON.parse(await a.page.inputValue("#document-editor"));
  fields.name = "Edited in the dashboard";
  await a.page.fill("#document-editor", JSON.stringify(fields, null, 2));
  const started = Date.now();
  await a.page.click("#save-document");
  await b.page.waitForFunction(
    (id) => document.querySelector(`#rows tbody tr[data-id="${id}"] td[data-field="name"]`)?.textContent === "Edited in the dashboard",
    target,
  );
  result.timings.editSeenInB = Date.now() - started;
  result.nameInB = await cell(b.page, target, "name");
  await a.page.waitForSelector("#document-view >> text=Edited in the dashboard");
  result.screenshots.push(await screenshot(a, "document"));
  result.screenshots.push(await screenshot(b, "live-edit"));

  // An invalid edit: the schema's message, and nothing changes.
  await a.page.click("#edit-document");
  const bad = JSON.parse(await a.page.inputValue("#document-editor"));
  bad.credits = "lots";
  bad.name = "Should not be saved";
  await a.page.fill("#document-editor", JSON.stringify(bad, null, 2));
  await a.page.click("#save-document");
  await a.page.waitForFunction(() => document.querySelector("#document-error").textContent.length > 0);
  result.invalidEditError = await a.page.textContent("#document-error");
  result.screenshots.push(await screenshot(a, "invalid-edit"));
  await a.page.click("#cancel-edit");
  result.nameAfterInvalidInB = await cell(b.page, target, "name");
  result.targetId = target;

  // Functions: store the user, then create a project as that user.
  await a.page.click('nav button[data-view="functions"]');
  await a.page.waitForSelector('body[data-functions-loaded="true"]');
  result.functionCount = await a.page.$$eval("#functions button", (buttons) => buttons.length);
  const claims = JSON.stringify({
    subject: params.subject,
    issuer: `${url}/_dev/auth`,
    name: "Dash Board",
    email: `${params.subject}@example.test`,
  });
  for (const [path, args] of [["users:store", "{}"], ["projects:create", '{"name": "Made in the dashboard"}']]) {
    const runsBefore = Number(await a.page.evaluate(() => document.body.dataset.runs ?? "0"));
    await a.page.click(`#functions button[data-path="${path}"]`);
    await a.page.fill("#run-form [name=args]", args);
    await a.page.check('#run-form [name=as][value="claims"]');
    await a.page.fill("#run-form [name=claims]", claims);
    await a.page.click("#run-form button[type=submit]");
    await a.page.waitForFunction((n) => Number(document.body.dataset.runs ?? "0") > n, runsBefore);
    result[`run:${path}`] = {
      meta: await a.page.textContent("#run-meta"),
      error: await a.page.textContent("#run-error"),
    };
  }
  result.screenshots.push(await screenshot(a, "functions"));

  // B sees the project row appear (the projects table, live).
  await b.page.click('#tables button[data-table="projects"]');
  await b.page.waitForSelector('#rows tbody td[data-field="name"] >> text=Made in the dashboard');
  result.projectNamesInB = await b.page.$$eval('#rows tbody td[data-field="name"]', (cells) => cells.map((c) => c.textContent));
  result.screenshots.push(await screenshot(b, "project-created"));

  // A query run as that user, kept live: an edit of the user's row shows up in its result.
  await a.page.click('#functions button[data-path="users:current"]');
  await a.page.fill("#run-form [name=args]", "{}");
  await a.page.check('#run-form [name=as][value="claims"]');
  await a.page.fill("#run-form [name=claims]", claims);
  await a.page.check("#run-form [name=live]");
  await a.page.click("#run-form button[type=submit]");
  await a.page.waitForSelector('#run-value >> text=Dash Board');
  await a.page.click('nav button[data-view="data"]');
  await a.page.waitForSelector(`#rows tbody td[data-field="clerkId"] >> text=${params.subject}`);
  await a.page.click(`#rows tbody tr:has(td[data-field="clerkId"]:text-is("${params.subject}"))`);
  await a.page.waitForSelector('#document-view >> text=Dash Board');
  await a.page.click("#edit-document");
  const user = JSON.parse(await a.page.inputValue("#document-editor"));
  user.name = "Renamed while live";
  await a.page.fill("#document-editor", JSON.stringify(user, null, 2));
  await a.page.click("#save-document");
  await a.page.click('nav button[data-view="functions"]');
  await a.page.waitForSelector('#run-value >> text=Renamed while live');
  result.liveRunMeta = await a.page.textContent("#run-meta");
  result.screenshots.push(await screenshot(a, "live-run"));

  // The document viewer shows int64, bytes and nested values as they are; ids link to their
  // document.
  await a.page.click('nav button[data-view="data"]');
  await a.page.click('#tables button[data-table="valueProbes"]');
  await a.page.waitForSelector('#rows tbody tr');
  await a.page.click("#rows tbody tr");
  await a.page.waitForSelector("#document-view .v-int64");
  const probe = {
    text: await a.page.textContent("#document-view"),
    int64Title: await a.page.getAttribute("#document-view .v-int64", "title"),
    ownerId: await a.page.textContent('#rows tbody td[data-field="owner"]'),
  };
  probe.linkedTo = await a.page.evaluate(() =>
    [...document.querySelectorAll("#document-view a.v-id")].map((link) => link.dataset.id).find((id) => id !== document.querySelector("#document").dataset.id));
  result.screenshots.push(await screenshot(a, "values"));
  await a.page.click(`#document-view a.v-id[data-id="${probe.linkedTo}"]`);
  await a.page.waitForSelector('#document-view >> text=seed_0000');
  probe.openedLinkClerkId = "seed_0000";
  result.probe = probe;

  // Logs: the call is there.
  await a.page.click('nav button[data-view="logs"]');
  await a.page.waitForSelector('#logs tbody tr[data-path="projects:create"]');
  result.loggedCreate = await a.page.textContent('#logs tbody tr[data-path="projects:create"]');
  await a.page.selectOption("#log-kind", "mutation");
  result.screenshots.push(await screenshot(a, "logs"));

  await a.page.click('nav button[data-view="schema"]');
  await a.page.waitForSelector("#indexes tbody tr");
  await a.page.waitForSelector("#health dd");
  await a.page.waitForSelector("#nodes tbody tr");
  result.nodesTable = await a.page.textContent("#nodes tbody");
  result.screenshots.push(await screenshot(a, "schema"));
  return result;
}

runInTwo(run);
