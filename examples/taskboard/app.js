// The taskboard: sign in with the dev identity provider of `reactive dev`, store the user, list
// their projects and show one project's board live; every change comes back through the
// subscriptions (no local state is patched by hand), so two open pages always agree.
//
// Plain ES module, no build step; the official browser bundle provides `globalThis.convex`.
// URL options: `?server=http://127.0.0.1:3210` when this page is served by another server,
// `#project=<id>` opens that project's board.

const STATUSES = [
  ["todo", "To do"],
  ["in_progress", "In progress"],
  ["done", "Done"],
];
const PROJECTS_SHOWN = 100;
const PROFILE_KEY = "taskboard.profile";

const serverUrl = new URLSearchParams(location.search).get("server") ?? location.origin;
const $ = (selector) => document.querySelector(selector);

let client = null;
let api = null;
/** The profile signed in with, once the server confirmed the token; else null. */
let signedInAs = null;
let projectsSubscription = null;
/** One unsubscribe function per board column, while a board is open. */
let boardSubscriptions = [];
let projectNames = new Map();
let openProjectId = null;

// -- status line ---------------------------------------------------------------------------------

function showStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

/** What a failed call says to a person: a ConvexError's message, else the error's. */
function describe(error) {
  const data = error?.data;
  if (data && typeof data === "object" && typeof data.message === "string") return data.message;
  if (data && typeof data === "object" && data.code === "NOT_FOUND") return `${data.resource} not found`;
  return error?.message ?? String(error);
}

function reportError(error) {
  console.error(error);
  showStatus(describe(error), true);
}

// -- signing in ----------------------------------------------------------------------------------

/** The dev identity provider's token endpoint (see reactive/dev_auth.py). */
async function fetchDevToken(profile) {
  const response = await fetch(`${serverUrl}/_dev/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(profile),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showStatus(`Sign-in refused: ${body.message ?? response.status}`, true);
    return null; // tells the client there is no token: it reports "not authenticated"
  }
  return body.token;
}

function signIn(profile) {
  showStatus("Signing in…");
  localStorage.setItem(PROFILE_KEY, JSON.stringify(profile));
  client.setAuth(
    () => fetchDevToken(profile),
    (isAuthenticated) => (isAuthenticated ? onSignedIn(profile) : onSignedOut()),
  );
}

async function onSignedIn(profile) {
  if (signedInAs !== null) return; // called again after a reconnect
  signedInAs = profile;
  try {
    // Creates the users row on first sign-in; the app's functions need it.
    await client.mutation(api.users.store, {});
  } catch (error) {
    reportError(error);
    return;
  }
  document.body.dataset.state = "signed-in";
  $("#who").textContent = profile.name ? `${profile.name} (${profile.subject})` : profile.subject;
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  showStatus("");
  subscribeToProjects();
  openBoard(projectFromHash());
}

function onSignedOut() {
  signedInAs = null;
  closeBoard();
  projectsSubscription?.();
  projectsSubscription = null;
  document.body.dataset.state = "signed-out";
  $("#who").textContent = "";
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
}

function signOut() {
  localStorage.removeItem(PROFILE_KEY);
  client.client.clearAuth?.();
  onSignedOut();
  showStatus("Signed out.");
}

function profileFromForm(form) {
  const fields = Object.fromEntries(new FormData(form));
  const profile = { subject: fields.subject.trim() };
  for (const name of ["name", "email"]) {
    if (fields[name].trim()) profile[name] = fields[name].trim();
  }
  return profile;
}

// -- projects ------------------------------------------------------------------------------------

function subscribeToProjects() {
  const args = { paginationOpts: { numItems: PROJECTS_SHOWN, cursor: null } };
  projectsSubscription = client.onUpdate(api.projects.list, args, renderProjects, reportError);
}

function renderProjects(result) {
  projectNames = new Map(result.page.map((project) => [project._id, project.name]));
  const items = result.page.map((project) => {
    const link = document.createElement("a");
    link.href = `#project=${project._id}`;
    link.textContent = project.name;
    const item = document.createElement("li");
    item.dataset.projectId = project._id;
    item.classList.toggle("open", project._id === openProjectId);
    item.append(link);
    return item;
  });
  $("#projects").replaceChildren(...items);
  $("#more-projects").hidden = result.isDone;
  if (openProjectId !== null) $("#project-name").textContent = projectNames.get(openProjectId) ?? "";
}

async function createProject(form) {
  const name = form.elements.name.value;
  try {
    const projectId = await client.mutation(api.projects.create, { name });
    form.reset();
    location.hash = `project=${projectId}`; // the hashchange handler opens it
  } catch (error) {
    reportError(error);
  }
}

// -- the board -----------------------------------------------------------------------------------

function projectFromHash() {
  const match = /^#project=([\w-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

function closeBoard() {
  for (const unsubscribe of boardSubscriptions) unsubscribe();
  boardSubscriptions = [];
  openProjectId = null;
  $("#board").hidden = true;
  $("#no-board").hidden = false;
}

function openBoard(projectId) {
  closeBoard();
  if (projectId === null) return;
  openProjectId = projectId;
  for (const item of document.querySelectorAll("#projects li")) {
    item.classList.toggle("open", item.dataset.projectId === projectId);
  }
  $("#project-name").textContent = projectNames.get(projectId) ?? "";
  for (const column of document.querySelectorAll(".column")) column.dataset.loaded = "false";
  boardSubscriptions = STATUSES.map(([status]) =>
    client.onUpdate(
      api.tasks.listByStatus,
      { projectId, status },
      (tasks) => renderColumn(status, tasks),
      reportError,
    ),
  );
  $("#board").hidden = false;
  $("#no-board").hidden = true;
}

function renderColumn(status, tasks) {
  const column = document.querySelector(`[data-column="${status}"]`);
  column.querySelector(".tasks").replaceChildren(...tasks.map(taskCard));
  column.querySelector(".count").textContent = `(${tasks.length})`;
  column.dataset.loaded = "true";
}

function taskCard(task) {
  const card = document.createElement("li");
  card.className = "task";
  card.dataset.taskId = task._id;
  card.draggable = true;
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = task.title;
  const moves = document.createElement("div");
  moves.className = "moves";
  for (const [status, label] of STATUSES) {
    if (status === task.status) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.move = status;
    button.textContent = `→ ${label}`;
    moves.append(button);
  }
  card.append(title, moves);
  return card;
}

async function moveTask(taskId, status) {
  try {
    await client.mutation(api.tasks.updateStatus, { taskId, status });
  } catch (error) {
    reportError(error);
  }
}

async function createTask(form) {
  const title = form.elements.title.value;
  try {
    await client.mutation(api.tasks.create, { projectId: openProjectId, title });
    form.reset();
  } catch (error) {
    reportError(error);
  }
}

// -- wiring --------------------------------------------------------------------------------------

function onSubmit(selector, handler) {
  $(selector).addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event.target);
  });
}

function wireBoardEvents() {
  $("#board").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-move]");
    if (button) moveTask(button.closest(".task").dataset.taskId, button.dataset.move);
  });
  // Drag and drop between columns, as an alternative to the buttons.
  $("#board").addEventListener("dragstart", (event) => {
    const card = event.target.closest?.(".task");
    if (card) event.dataTransfer.setData("text/plain", card.dataset.taskId);
  });
  for (const column of document.querySelectorAll(".column")) {
    column.addEventListener("dragover", (event) => event.preventDefault());
    column.addEventListener("drop", (event) => {
      event.preventDefault();
      const taskId = event.dataTransfer.getData("text/plain");
      if (taskId) moveTask(taskId, column.dataset.column);
    });
  }
}

function start() {
  if (!globalThis.convex?.ConvexClient) {
    showStatus(
      "The Convex browser bundle did not load: run `npm install convex` in examples/taskboard/.",
      true,
    );
    document.body.dataset.state = "no-bundle";
    return;
  }
  api = globalThis.convex.anyApi;
  client = new globalThis.convex.ConvexClient(serverUrl);
  onSubmit("#sign-in-form", (form) => signIn(profileFromForm(form)));
  onSubmit("#new-project", createProject);
  onSubmit("#new-task", createTask);
  $("#sign-out").addEventListener("click", signOut);
  wireBoardEvents();
  window.addEventListener("hashchange", () => {
    if (signedInAs !== null) openBoard(projectFromHash());
  });
  const remembered = localStorage.getItem(PROFILE_KEY);
  if (remembered) {
    signIn(JSON.parse(remembered));
  } else {
    onSignedOut();
  }
}

start();
