// The dashboard: every view is a live query over the sync protocol, through the official Convex
// browser bundle (`globalThis.convex`), authenticated with the admin key as Convex's own
// dashboard is (`setAdminAuth`). Data, functions and schema come from the server's system
// functions `_system/dashboard:*`; logs stream from `/_dashboard/api/logs`.
//
// Values are always rendered as text (textContent), never as HTML.

const SYSTEM = "_system/dashboard";
const PAGE_SIZE = 50;
const LOGS_KEPT = 500;

const $ = (selector) => document.querySelector(selector);
let adminKey = null;
let client = null;

// -- small helpers -------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

let statusTimer = null;

function showStatus(text, isError = false) {
  $("#status").textContent = text;
  $("#status").classList.toggle("error", isError);
  clearTimeout(statusTimer);
  if (!isError) statusTimer = setTimeout(() => ($("#status").textContent = ""), 4000);
}

/** What a failed call says to a person, without the client's "[CONVEX M(path)]" framing. */
function describe(error) {
  const message = String(error?.message ?? error)
    .replace(/^\[CONVEX [^\]]*\] (Uncaught )?/, "")
    .replace(/\s*Called by client$/, "");
  const data = error?.data;
  return data !== undefined && data !== null ? `${message} ${JSON.stringify(data)}` : message;
}

/** Subscribe to a system or project query; returns the unsubscribe function. */
function live(path, args, onValue, onError = (e) => showStatus(describe(e), true)) {
  return client.onUpdate(path, args, onValue, onError);
}

// -- Convex values: text for people, and the editor's JSON -----------------------------------------

function toBase64(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes.buffer;
}

/** A value as the editor shows it: JSON with int64 as {"$int64"} and bytes as {"$bytes"}. */
function toEditable(value) {
  if (typeof value === "bigint") return { $int64: value.toString() };
  if (value instanceof ArrayBuffer) return { $bytes: toBase64(value) };
  if (Array.isArray(value)) return value.map(toEditable);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toEditable(v)]));
  }
  return value;
}

function fromEditable(value) {
  if (Array.isArray(value)) return value.map(fromEditable);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$int64") return BigInt(value.$int64);
    if (keys.length === 1 && keys[0] === "$bytes") return fromBase64(value.$bytes);
    return Object.fromEntries(keys.map((k) => [k, fromEditable(value[k])]));
  }
  return value;
}

const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** Whether `text` is a document id (the format of reactive/ids.py: base32 of varint(table
 * number), 16 random bytes and a Fletcher-16 checksum), so that any id links to its document. */
function isId(text) {
  if (typeof text !== "string" || ![31, 32, 34, 36, 37].includes(text.length)) return false;
  const nBytes = Math.floor((text.length * 5) / 8);
  let number = 0n;
  for (const char of text) {
    const value = ID_ALPHABET.indexOf(char);
    if (value < 0) return false;
    number = (number << 5n) | BigInt(value);
  }
  const spare = BigInt(text.length * 5 - nBytes * 8);
  if (number & ((1n << spare) - 1n)) return false;
  number >>= spare;
  const bytes = [];
  for (let i = 0; i < nBytes; i++) bytes.unshift(Number(number & 0xffn)), (number >>= 8n);
  const body = bytes.slice(0, -2);
  let sum1 = 0, sum2 = 0;
  for (const byte of body) {
    sum1 = (sum1 + byte) % 255;
    sum2 = (sum2 + sum1) % 255;
  }
  if (bytes.at(-2) !== sum2 || bytes.at(-1) !== sum1) return false;
  let used = 0;
  while (used < 5 && body[used] & 0x80) used++;
  return used < 5 && body.length - (used + 1) === 16;
}

/** A DOM rendering of a Convex value; ids (of any table) become links to their document. */
function renderValue(value) {
  if (value === null) return el("span", { className: "v-null" }, "null");
  if (typeof value === "bigint") return el("span", { className: "v-int64", title: "int64" }, `${value}n`);
  if (typeof value === "number") return el("span", { className: "v-number", title: "float64" }, String(value));
  if (typeof value === "boolean") return el("span", { className: "v-boolean" }, String(value));
  if (value instanceof ArrayBuffer) {
    return el("span", { className: "v-bytes", title: "bytes" }, `bytes(${value.byteLength}) ${toBase64(value).slice(0, 40)}`);
  }
  if (typeof value === "string") {
    if (isId(value)) {
      return el("a", { href: "#", className: "v-id", dataset: { id: value }, onclick: (event) => {
        event.preventDefault();
        openDocument(value);
      } }, value);
    }
    return el("span", { className: "v-string" }, JSON.stringify(value));
  }
  if (Array.isArray(value)) {
    const list = el("ol", { className: "v-array" });
    value.forEach((item) => list.append(el("li", {}, renderValue(item))));
    return el("span", {}, "[", list, "]");
  }
  const fields = el("dl", { className: "v-object" });
  for (const [name, item] of Object.entries(value)) {
    fields.append(el("dt", {}, name), el("dd", {}, renderValue(item)));
  }
  return el("span", {}, "{", fields, "}");
}

/** One line of text for a grid cell. */
function cellText(value) {
  if (value === undefined) return "";
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof ArrayBuffer) return `bytes(${value.byteLength})`;
  if (typeof value === "string") return value;
  return JSON.stringify(toEditable(value));
}

// -- views ---------------------------------------------------------------------------------------

function showView(name) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
  for (const button of document.querySelectorAll("nav button")) {
    if (button.dataset.view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  document.body.dataset.view = name;
  if (name === "logs") startLogs();
}

// -- data ----------------------------------------------------------------------------------------

let tables = [];
/** Document counts by table, each a live query of its own. */
const counts = new Map();
const countSubscriptions = new Map();
let current = { table: null, index: "by_creation_time", order: "desc", range: [], filter: [] };
/** Cursors of the pages before the one shown (null: the first page). */
let cursors = [];
let pageCursor = null;
let pageResult = null;
let pageSubscription = null;

function renderTables(list) {
  tables = list;
  for (const table of list) {
    if (countSubscriptions.has(table.name)) continue;
    countSubscriptions.set(table.name, live(`${SYSTEM}:count`, { table: table.name }, (count) => {
      counts.set(table.name, count);
      const button = document.querySelector(`#tables button[data-table="${CSS.escape(table.name)}"]`);
      if (button) {
        button.dataset.count = String(count);
        button.querySelector(".count").textContent = String(count);
      }
      renderSchemaTables();
    }));
  }
  const ul = $("#tables");
  ul.replaceChildren(
    ...list.map((table) =>
      el("li", {}, el("button", {
        type: "button",
        className: table.name === current.table ? "selected" : "",
        dataset: { table: table.name, count: String(counts.get(table.name) ?? "") },
        onclick: () => selectTable(table.name),
      }, table.name, " ", el("span", { className: "count" }, String(counts.get(table.name) ?? "…")), table.system ? el("span", { className: "badge" }, "read-only") : null)),
    ),
  );
  document.body.dataset.tablesLoaded = "true";
  renderIndexes();
  renderSchemaTables();
}

function tableInfo(name) {
  return tables.find((table) => table.name === name);
}

function renderIndexes() {
  const info = tableInfo(current.table);
  if (!info) return;
  const select = $("#index");
  // Database indexes only: a search index (fields "$search", ...) does not order documents.
  const names = info.indexes
    .filter((index) => index.state === "ready" && !String(index.fields[0] ?? "").startsWith("$"))
    .map((index) => index.name);
  if (!names.includes("by_creation_time")) names.unshift("by_creation_time");
  const chosen = select.value || current.index;
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  select.value = names.includes(chosen) ? chosen : "by_creation_time";
}

function selectTable(name) {
  current = { table: name, index: "by_creation_time", order: "desc", range: [], filter: [] };
  $("#index").value = "";
  $("#range").value = "";
  $("#filter").value = "";
  $("#order").value = "desc";
  $("#table-name").textContent = name;
  const info = tableInfo(name);
  $("#add-document").disabled = !info || info.system;
  for (const button of document.querySelectorAll("#tables button")) {
    button.classList.toggle("selected", button.dataset.table === name);
  }
  renderIndexes();
  cursors = [];
  subscribePage(null);
}

function parseSteps(input) {
  const text = input.value.trim();
  if (!text) return [];
  const steps = JSON.parse(text);
  if (!Array.isArray(steps)) throw new Error(`${input.id} must be a JSON array of [op, field, value]`);
  return steps.map((step) => [step[0], step[1], fromEditable(step[2])]);
}

function applyQuery() {
  try {
    current.index = $("#index").value || "by_creation_time";
    current.order = $("#order").value;
    current.range = parseSteps($("#range"));
    current.filter = parseSteps($("#filter"));
  } catch (error) {
    $("#query-error").textContent = describe(error);
    return;
  }
  cursors = [];
  subscribePage(null);
}

function subscribePage(cursor) {
  if (pageSubscription) pageSubscription();
  pageCursor = cursor;
  $("#query-error").textContent = "";
  document.body.dataset.pageLoaded = "false";
  const args = {
    table: current.table,
    index: current.index,
    order: current.order,
    range: current.range,
    filter: current.filter,
    paginationOpts: { numItems: PAGE_SIZE, cursor },
  };
  pageSubscription = live(`${SYSTEM}:page`, args, renderPage, (error) => {
    $("#query-error").textContent = describe(error);
    document.body.dataset.pageLoaded = "error";
  });
}

function renderPage(result) {
  pageResult = result;
  const docs = result.page;
  // Sorted, so that a column keeps its place however the documents' fields were written.
  const names = new Set();
  for (const doc of docs) for (const name of Object.keys(doc)) if (!name.startsWith("_")) names.add(name);
  const columns = ["_id", ...[...names].sort(), "_creationTime"];
  $("#rows thead").replaceChildren(el("tr", {}, ...columns.map((name) => el("th", {}, name))));
  $("#rows tbody").replaceChildren(
    ...docs.map((doc) =>
      el("tr", { dataset: { id: doc._id }, onclick: () => openDocument(doc._id) },
        ...columns.map((name) => el("td", { dataset: { field: name } }, cellText(doc[name])))),
    ),
  );
  const pageNumber = cursors.length + 1;
  $("#page-info").textContent = `page ${pageNumber} · ${docs.length} documents`;
  $("#prev-page").disabled = cursors.length === 0;
  $("#next-page").disabled = result.isDone;
  document.body.dataset.pageLoaded = "true";
  document.body.dataset.pageNumber = String(pageNumber);
}

// -- one document --------------------------------------------------------------------------------

let documentSubscription = null;
let openDoc = null;

function openDocument(id) {
  if (documentSubscription) documentSubscription();
  stopEditing();
  $("#document").hidden = false;
  $("#document").dataset.id = id;
  $("#document-error").textContent = "";
  $("#document-view").replaceChildren(el("span", {}, "loading…"));
  documentSubscription = live(`${SYSTEM}:get`, { id }, (doc) => {
    openDoc = doc;
    $("#document").dataset.loaded = "true";
    if (doc === null) {
      $("#document-view").replaceChildren(el("span", { className: "v-null" }, `No document ${id} (deleted?)`));
      return;
    }
    $("#document-view").replaceChildren(renderValue(doc), ...storedFile(doc));
    const system = id && tableInfo(current.table)?.system;
    $("#edit-document").hidden = Boolean(system);
    $("#delete-document").hidden = Boolean(system);
    $("#cancel-job").hidden = !isCancellableJob(doc);
  });
}

/** A `_scheduled_functions` row (by its shape: it may be opened from a link in another
 * table) that has not finished: pending, or an action in progress. */
function isCancellableJob(doc) {
  const kind = doc && doc.state && typeof doc.state === "object" ? doc.state.kind : null;
  const shaped = doc && typeof doc.name === "string" && typeof doc.scheduledTime === "number";
  return Boolean(shaped) && (kind === "pending" || kind === "inProgress");
}

async function cancelJob() {
  if (!openDoc) return;
  try {
    await client.mutation(`${SYSTEM}:cancel`, { id: openDoc._id });
    showStatus(`Canceled ${openDoc._id}.`);
  } catch (error) {
    $("#document-error").textContent = describe(error);
  }
}

const PREVIEWED = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/** For a `_storage` row: its download link, and a preview of an image. */
function storedFile(doc) {
  if (typeof doc.sha256 !== "string" || typeof doc.size !== "number" || !doc._id) return [];
  const href = `${location.origin}/api/storage/${encodeURIComponent(doc._id)}`;
  const type = typeof doc.contentType === "string" ? doc.contentType : "application/octet-stream";
  const parts = [el("p", {}, `${type}, ${doc.size} bytes · `, el("a", { href, target: "_blank", rel: "noopener", className: "download" }, "open / download"))];
  if (PREVIEWED.includes(type)) parts.push(el("img", { src: href, alt: "preview", className: "preview" }));
  return parts;
}

function closeDocument() {
  if (documentSubscription) documentSubscription();
  documentSubscription = null;
  openDoc = null;
  stopEditing();
  $("#document").hidden = true;
}

let editing = null; // {mode: "edit", id} | {mode: "insert", table}

function startEditing(mode) {
  const editor = $("#document-editor");
  if (mode === "insert") {
    editing = { mode, table: current.table };
    $("#document").hidden = false;
    $("#document-view").replaceChildren(el("span", {}, `New document in ${current.table}`));
    editor.value = "{\n}";
  } else {
    if (!openDoc) return;
    editing = { mode, id: openDoc._id };
    const fields = Object.fromEntries(Object.entries(openDoc).filter(([k]) => !k.startsWith("_")));
    editor.value = JSON.stringify(toEditable(fields), null, 2);
  }
  $("#document-error").textContent = "";
  for (const id of ["#document-editor", "#save-document", "#cancel-edit", "#editor-hint"]) $(id).hidden = false;
  $("#edit-document").hidden = true;
  editor.focus();
}

function stopEditing() {
  editing = null;
  for (const id of ["#document-editor", "#save-document", "#cancel-edit", "#editor-hint"]) $(id).hidden = true;
  $("#edit-document").hidden = false;
}

async function saveDocument() {
  const errorLine = $("#document-error");
  errorLine.textContent = "";
  showStatus(""); // an earlier "Saved." must not stand beside this save's error
  let value;
  try {
    value = fromEditable(JSON.parse($("#document-editor").value));
  } catch (error) {
    errorLine.textContent = `Not valid JSON: ${error.message}`;
    return;
  }
  try {
    if (editing.mode === "insert") {
      const id = await client.mutation(`${SYSTEM}:insert`, { table: editing.table, value });
      stopEditing();
      openDocument(id);
    } else {
      await client.mutation(`${SYSTEM}:replace`, { id: editing.id, value });
      stopEditing();
    }
    showStatus("Saved.");
  } catch (error) {
    errorLine.textContent = describe(error);
  }
}

async function deleteDocument() {
  if (!openDoc) return;
  try {
    await client.mutation(`${SYSTEM}:delete`, { ids: [openDoc._id] });
    showStatus(`Deleted ${openDoc._id}.`);
    closeDocument();
  } catch (error) {
    $("#document-error").textContent = describe(error);
  }
}

// -- functions -----------------------------------------------------------------------------------

let functions = [];
let selectedFunction = null;
let liveRun = null;

function renderFunctions(list) {
  functions = list;
  $("#functions").replaceChildren(
    ...list.map((fn) =>
      el("li", {}, el("button", {
        type: "button",
        dataset: { path: fn.path },
        className: fn.path === selectedFunction?.path ? "selected" : "",
        onclick: () => selectFunction(fn.path),
      }, fn.path, " ", el("span", { className: "badge" }, fn.kind), fn.internal ? el("span", { className: "badge" }, "internal") : null)),
    ),
  );
  document.body.dataset.functionsLoaded = "true";
}

function selectFunction(path) {
  selectedFunction = functions.find((fn) => fn.path === path);
  if (!selectedFunction) return;
  $("#function-name").textContent = `${path} (${selectedFunction.kind}${selectedFunction.internal ? ", internal" : ""})`;
  $("#function-validators").replaceChildren(
    el("h3", {}, "Arguments"),
    el("pre", {}, selectedFunction.args ? JSON.stringify(selectedFunction.args, null, 2) : "any (no validator)"),
    el("h3", {}, "Returns"),
    el("pre", {}, selectedFunction.returns ? JSON.stringify(selectedFunction.returns, null, 2) : "any (no validator)"),
  );
  $("#run-form").hidden = false;
  for (const button of document.querySelectorAll("#functions button")) {
    button.classList.toggle("selected", button.dataset.path === path);
  }
}

function runIdentity(form) {
  const mode = form.elements.as.value;
  if (mode === "user") {
    return { subject: form.elements.subject.value, issuer: form.elements.issuer.value };
  }
  if (mode === "claims") return JSON.parse(form.elements.claims.value);
  return null;
}

function showRun({ value, error, logLines, meta }) {
  $("#run-result").hidden = false;
  $("#run-meta").textContent = meta;
  $("#run-error").textContent = error ?? "";
  $("#run-value").replaceChildren(error ? "" : renderValue(value));
  $("#run-logs").textContent = (logLines ?? []).join("\n");
  document.body.dataset.runs = String(Number(document.body.dataset.runs ?? "0") + 1);
}

async function runFunction(event) {
  event.preventDefault();
  const form = event.target;
  if (liveRun) {
    liveRun.close();
    liveRun = null;
  }
  let args, identity;
  try {
    args = fromEditable(JSON.parse(form.elements.args.value || "{}"));
    identity = runIdentity(form);
  } catch (error) {
    showRun({ error: `Not valid JSON: ${error.message}`, meta: "" });
    return;
  }
  const path = selectedFunction.path;
  if (form.elements.live.checked && selectedFunction.kind === "query") {
    // A client of its own, acting as the chosen identity: the result stays live.
    const own = new globalThis.convex.ConvexClient(location.origin);
    own.setAdminAuth(adminKey, identity ?? undefined);
    const started = performance.now();
    let firstMs = null;
    own.onUpdate(path, args, (value) => {
      firstMs ??= performance.now() - started;
      showRun({ value, meta: `live · updated ${new Date().toLocaleTimeString()} · first result in ${firstMs.toFixed(1)} ms` });
    }, (error) => showRun({ error: describe(error), meta: "live" }));
    liveRun = own;
    return;
  }
  const response = await fetch("api/run", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Convex ${adminKey}` },
    body: JSON.stringify({ path, args: encodeArgs(args), identity }),
  });
  const body = await response.json();
  if (!response.ok) {
    showRun({ error: body.message ?? response.statusText, meta: `${response.status}` });
    return;
  }
  const meta = `${body.kind} · ${body.durationMs} ms · ${body.status}`;
  showRun({
    value: body.status === "success" ? decodeWire(body.value) : null,
    error: body.status === "success" ? null : body.errorMessage + (body.errorData ? ` ${JSON.stringify(body.errorData)}` : ""),
    logLines: body.logLines,
    meta,
  });
}

/** Convex's wire encoding of values (int64 and bytes as tagged objects), for api/run. */
function encodeArgs(value) {
  if (typeof value === "bigint") {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigInt64(0, value, true);
    return { $integer: toBase64(view.buffer) };
  }
  if (value instanceof ArrayBuffer) return { $bytes: toBase64(value) };
  if (Array.isArray(value)) return value.map(encodeArgs);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encodeArgs(v)]));
  }
  return value;
}

function decodeWire(value) {
  if (Array.isArray(value)) return value.map(decodeWire);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$integer") return new DataView(fromBase64(value.$integer)).getBigInt64(0, true);
    if (keys.length === 1 && keys[0] === "$bytes") return fromBase64(value.$bytes);
    if (keys.length === 1 && keys[0] === "$float") return new DataView(fromBase64(value.$float)).getFloat64(0, true);
    return Object.fromEntries(keys.map((k) => [k, decodeWire(value[k])]));
  }
  return value;
}

// -- logs ----------------------------------------------------------------------------------------

let logs = [];
let logsStarted = false;

async function startLogs() {
  if (logsStarted) return;
  logsStarted = true;
  for (const id of ["#log-function", "#log-kind", "#log-status"]) $(id).addEventListener("input", renderLogs);
  try {
    const response = await fetch("api/logs", { headers: { authorization: `Convex ${adminKey}` } });
    if (!response.ok) throw new Error(`logs: ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const line of lines) {
        if (!line) continue;
        const record = JSON.parse(line);
        if (record.type === "connected") {
          document.body.dataset.logsConnected = "true";
          continue;
        }
        logs.push(record);
      }
      if (logs.length > LOGS_KEPT) logs = logs.slice(-LOGS_KEPT);
      renderLogs();
    }
  } catch (error) {
    showStatus(`Log stream ended: ${describe(error)}`, true);
  }
  logsStarted = false;
}

function renderLogs() {
  // Kinds the page does not list yet (scheduled runs, crons, ...) become filter options.
  const select = $("#log-kind");
  const known = new Set([...select.options].map((option) => option.value));
  for (const record of logs) {
    if (!known.has(record.kind)) {
      known.add(record.kind);
      select.append(el("option", { value: record.kind }, record.kind));
    }
  }
  const fn = $("#log-function").value.trim();
  const kind = $("#log-kind").value;
  const status = $("#log-status").value;
  const shown = logs.filter((record) =>
    (!fn || record.path.includes(fn)) && (!kind || record.kind === kind) &&
    (!status || (status === "ok") === record.ok));
  $("#logs tbody").replaceChildren(
    ...shown.slice().reverse().map((record) =>
      el("tr", { className: record.ok ? "ok" : "failed", dataset: { path: record.path, kind: record.kind } },
        el("td", {}, new Date(record.at * 1000).toLocaleTimeString()),
        el("td", {}, record.kind),
        el("td", {}, record.path),
        el("td", {}, record.duration_ms.toFixed(1)),
        el("td", {}, record.ok ? "ok" : "error"),
        el("td", {}, el("pre", {}, [...record.log_lines, ...(record.error ? [record.error] : [])].join("\n"))))),
  );
}

// -- schema and health ---------------------------------------------------------------------------

function renderSchemaTables() {
  const rows = [];
  for (const table of tables) {
    const indexes = table.indexes.length ? table.indexes : [{ name: "", fields: [], state: "" }];
    for (const index of indexes) {
      rows.push(el("tr", {}, el("td", {}, table.name), el("td", {}, String(counts.get(table.name) ?? "…")), el("td", {}, index.name),
        el("td", {}, index.fields.join(", ")), el("td", { className: `state-${index.state}` }, index.state)));
    }
  }
  $("#indexes tbody").replaceChildren(...rows);
}

function renderDefinitionList(target, entries) {
  const text = (value) => (value !== null && typeof value === "object" ? JSON.stringify(value) : String(value));
  target.replaceChildren(...entries.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, text(value))]));
}

function renderSchema(result) {
  const deployment = result.deployment;
  renderDefinitionList($("#deployment"), [
    ["mode", deployment.dev ? "reactive dev" : "reactive serve"],
    ["version", deployment.version ?? "(code on disk, not deployed)"],
    ["deployed at", deployment.deployedAtMs ? new Date(deployment.deployedAtMs).toLocaleString() : "—"],
    ["functions", deployment.functions],
  ]);
}

function duration(ms) {
  return ms < 1000 ? "<1 s" : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

function renderNodes(nodes) {
  // Every serving node writes a report to the database every few seconds (dashboard.nodes).
  $("#nodes tbody").replaceChildren(...nodes.map((node) => el("tr", { className: `node-${node.state}` },
    el("td", {}, node.self ? `${node.id} (this node)` : node.id),
    el("td", {}, node.url ?? "—"),
    el("td", {}, node.state),
    el("td", {}, `${duration(node.reportAgeMs)} ago`),
    el("td", {}, duration(node.reportedAtMs - node.startedAtMs)),
    el("td", {}, String(node.lag_ms)),
    el("td", {}, String(node.commitsPerSecond)),
    el("td", {}, String(node.subscriptions)),
    el("td", {}, String(node.sockets)))));
}

async function refreshHealth() {
  // Health is the nodes' state, not data: read every 2 s while the page is open.
  try {
    const response = await fetch("api/health", { headers: { authorization: `Convex ${adminKey}` } });
    const { nodes, ...health } = await response.json();
    renderDefinitionList($("#health"), Object.entries(health));
    renderNodes(nodes ?? []);
  } catch (error) {
    renderDefinitionList($("#health"), [["status", describe(error)]]);
  }
}

// -- start ---------------------------------------------------------------------------------------

async function fetchAdminKey() {
  const response = await fetch("api/key");
  if (response.status === 401) {
    location.reload(); // the server answers with its sign-in form
    return null;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message ?? `the server answered ${response.status}`);
  return body.key;
}

async function start() {
  adminKey = await fetchAdminKey();
  if (!adminKey) return;
  client = new globalThis.convex.ConvexClient(location.origin);
  client.setAdminAuth(adminKey);
  client.connectionState && setInterval(() => {
    const state = client.connectionState();
    $("#connection").textContent = state.isWebSocketConnected ? "live" : "connecting…";
  }, 1000);
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => showView(button.dataset.view));
  }
  $("#apply").addEventListener("click", applyQuery);
  $("#index").addEventListener("change", applyQuery);
  $("#order").addEventListener("change", applyQuery);
  $("#next-page").addEventListener("click", () => {
    if (!pageResult || pageResult.isDone) return;
    cursors.push(pageCursor);
    subscribePage(pageResult.continueCursor);
  });
  $("#prev-page").addEventListener("click", () => {
    if (cursors.length === 0) return;
    subscribePage(cursors.pop());
  });
  $("#close-document").addEventListener("click", closeDocument);
  $("#edit-document").addEventListener("click", () => startEditing("edit"));
  $("#add-document").addEventListener("click", () => startEditing("insert"));
  $("#cancel-edit").addEventListener("click", stopEditing);
  $("#save-document").addEventListener("click", saveDocument);
  $("#delete-document").addEventListener("click", deleteDocument);
  $("#cancel-job").addEventListener("click", cancelJob);
  $("#run-form").addEventListener("submit", (event) => runFunction(event).catch((error) => showRun({ error: describe(error), meta: "" })));
  $("#run-form").elements.issuer.value = `${location.origin}/_dev/auth`;

  live(`${SYSTEM}:tables`, {}, renderTables);
  live(`${SYSTEM}:functions`, {}, renderFunctions);
  live(`${SYSTEM}:schema`, {}, renderSchema);
  refreshHealth();
  setInterval(refreshHealth, 2000);
  document.body.dataset.state = "ready";
  const view = new URLSearchParams(location.hash.slice(1)).get("view");
  if (view) showView(view);
}

start().catch((error) => {
  document.body.dataset.state = "failed";
  showStatus(`Could not open the dashboard: ${describe(error)}`, true);
});
