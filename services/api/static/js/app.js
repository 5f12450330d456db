// The dashboard: sign-in, routing (#/...), live state from the stream, toasts.
import { ApiError, api, get, setCsrfToken } from "./api.js";
import { h, replace } from "./dom.js";
import { Stream } from "./stream.js";
import * as accountView from "./views/account.js";
import * as accountsView from "./views/accounts.js";
import * as deadLettersView from "./views/deadletters.js";
import * as jobView from "./views/job.js";
import * as jobsView from "./views/jobs.js";
import * as overviewView from "./views/overview.js";

const routes = [
  [/^#?\/?$/, overviewView, "overview"],
  [/^#\/jobs\/([0-9a-f-]{36})$/, jobView, "jobs"],
  [/^#\/jobs$/, jobsView, "jobs"],
  [/^#\/dead-letters$/, deadLettersView, "dead-letters"],
  [/^#\/accounts\/([a-z0-9_-]+)$/, accountView, "accounts"],
  [/^#\/accounts$/, accountsView, "accounts"],
];

const view = document.getElementById("view");
const stream = new Stream();
// What the stream tells: the latest queues and workers, and every job it has seen change.
const live = { queues: null, workers: null, jobs: new Map(), snapshotAt: 0 };
const ctx = { stream, live, canWrite: false, toast, navigate, guard };
let cleanup = null;
let renderToken = 0;

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function toast(text, { kind = "info", link = null } = {}) {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast toast-${kind}` }, text,
    link && h("a", { href: link.href }, link.text));
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 5000);
}

// Runs an action from a button: disables it while in flight, shows errors as toasts.
async function guard(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    toast(error instanceof ApiError ? error.message : `Unexpected error: ${error}`, { kind: "error" });
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

async function route() {
  const hash = window.location.hash || "#/";
  const match = routes.find(([pattern]) => pattern.test(hash));
  const [pattern, module, name] = match || routes[0];
  const params = hash.match(pattern)?.slice(1) || [];
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.route === name);
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (cleanup) cleanup();
  cleanup = null;
  const token = ++renderToken;
  // Changes that arrive while the view loads are kept and handed to it when it starts
  // listening (views/common.js listen), so nothing falls between its fetch and its listener.
  stream.backlog = [];
  const container = h("div", { class: "page" });
  replace(view, container);
  document.body.dataset.ready = "false";
  try {
    const result = await module.render(container, params, ctx);
    if (token !== renderToken) {
      if (typeof result === "function") result();
      return;
    }
    cleanup = typeof result === "function" ? result : null;
    stream.backlog = null;
    document.body.dataset.ready = "true";
  } catch (error) {
    if (token !== renderToken) return;
    replace(container, h("div", { class: "card error" },
      h("h2", {}, "Could not load this page"), h("p", {}, String(error.message || error))));
    document.body.dataset.ready = "true";
  }
}

function trackStream() {
  for (const type of ["snapshot", "job", "queues", "workers", "resync"]) {
    stream.addEventListener(type, (event) => {
      if (stream.backlog && stream.backlog.length < 5000) stream.backlog.push(event);
    });
  }
  stream.addEventListener("snapshot", (event) => {
    const data = event.detail;
    live.queues = data.queues;
    live.workers = data.workers;
    live.snapshotAt = Date.now();
    for (const job of data.jobs || []) live.jobs.set(job.job_id, job);
  });
  stream.addEventListener("job", (event) => {
    const change = event.detail;
    const known = live.jobs.get(change.job_id) || {};
    live.jobs.set(change.job_id, { ...known, ...change });
    if (live.jobs.size > 5000) live.jobs.delete(live.jobs.keys().next().value);
  });
  stream.addEventListener("queues", (event) => { live.queues = event.detail; });
  stream.addEventListener("workers", (event) => { live.workers = event.detail; });
  stream.addEventListener("connection", (event) => {
    const badge = document.getElementById("live");
    badge.classList.toggle("off", !event.detail.connected);
    badge.textContent = event.detail.connected ? "live" : "reconnecting";
  });
}

function showSignIn(message) {
  stream.stop();
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  replace(view);
  const error = document.getElementById("sign-in-error");
  error.hidden = !message;
  error.textContent = message || "";
  document.getElementById("sign-in").hidden = false;
  document.getElementById("token").focus();
}

function startSession(session) {
  setCsrfToken(session.csrf_token);
  ctx.canWrite = session.scope === "write";
  document.body.classList.toggle("read-only", !ctx.canWrite);
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("session").hidden = false;
  document.getElementById("scope").textContent = ctx.canWrite ? "read & write" : "read-only";
  stream.start();
  route();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  const button = event.submitter;
  button.disabled = true;
  try {
    const session = await api("POST", "/api/session", { body: { token: input.value.trim() } });
    input.value = "";
    startSession(session);
  } catch (error) {
    showSignIn(error.status === 401 ? "That token is not valid." : error.message);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  await api("DELETE", "/api/session").catch(() => null);
  setCsrfToken(null);
  showSignIn("Signed out.");
}

async function boot() {
  trackStream();
  document.getElementById("sign-in-form").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  window.addEventListener("gristmill:signed-out", () => showSignIn("Your session has ended; sign in again."));
  try {
    const session = await get("/api/session");
    if (session.scope) startSession(session);
    else showSignIn(null);
  } catch (error) {
    showSignIn(`The api did not answer: ${error.message}`);
  }
}

boot();
