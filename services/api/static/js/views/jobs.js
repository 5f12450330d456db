// Jobs: the active ones with live progress and cancel, and the history with filters and paging.
import { get } from "../api.js";
import { h, replace, table } from "../dom.js";
import { label } from "../format.js";
import {
  FINISHED, JOB_COLUMNS, jobRow, listen, section, throttle, updateProgress,
} from "./common.js";

const PAGE_SIZE = 25;
// A job that just ended stays in the active list this long, showing how it ended.
const LINGER_MS = 10_000;
const ACTIVE_LIMIT = 200;
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const TYPES = ["scrape_account", "scrape_all", "scrape_platform", "backfill_account",
  "daily_scrape_all", "backfill_check", "cleanup_old_jobs", "health_check"];

async function loadActive() {
  const [running, pending] = await Promise.all([
    get("/api/jobs", { status: "running", limit: ACTIVE_LIMIT }),
    get("/api/jobs", { status: "pending", limit: ACTIVE_LIMIT }),
  ]);
  return [...running.items, ...pending.items];
}

function select(name, values, current) {
  return h("select", { name, "aria-label": name },
    h("option", { value: "" }, `any ${name.replace("_", " ")}`),
    values.map((v) => h("option", { value: v, selected: v === current }, label(v))));
}

export async function render(container, _params, ctx) {
  // Fan-out children are counted in their parent's progress; listing them here is noise.
  const active = new Map();
  let hiddenChildren = 0;
  const activeBody = h("div");
  const historyBody = h("div");
  const pager = h("div", { class: "pager" });
  const newer = h("div");
  const filters = { status: "", job_type: "", account_key: "" };
  const cursors = [null];
  let page = 0;
  let newCount = 0;

  function drawActive() {
    const jobs = [...active.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    replace(activeBody, table([...JOB_COLUMNS, { title: "" }],
      jobs.map((job) => jobRow(ctx, job, { cancel: true, onCancelled: (j) => ended(j) })),
      { empty: "No job is waiting or running." }),
    hiddenChildren ? h("p", { class: "muted small" },
      `${hiddenChildren} child job(s) of bulk scrapes are not listed; see their parent.`) : null);
  }

  // A status change that leaves a job active is checked against its record (batched): the
  // record is the truth should an event describe the job as it was before its commit.
  const unconfirmed = new Set();
  const confirmNow = throttle(async () => {
    const ids = [...unconfirmed];
    unconfirmed.clear();
    for (const id of ids) {
      const job = await get(`/api/jobs/${id}`).catch(() => null);
      if (!job || !container.isConnected) continue;
      updateProgress(container, job);
      if (FINISHED.has(job.status)) ended(job);
    }
  }, 1000);
  function confirm(jobId) {
    unconfirmed.add(jobId);
    confirmNow();
  }

  function ended(job) {
    const known = active.get(job.job_id);
    if (!known || known.leaving) return;
    Object.assign(known, { status: job.status, progress: job.progress, leaving: true });
    drawActive();
    setTimeout(() => { active.delete(job.job_id); if (container.isConnected) drawActive(); }, LINGER_MS);
  }

  async function drawHistory() {
    const data = await get("/api/jobs", { ...filters, limit: PAGE_SIZE, cursor: cursors[page] });
    cursors[page + 1] = data.next_cursor;
    replace(historyBody, table(JOB_COLUMNS, data.items.map((job) => jobRow(ctx, job)),
      { empty: "No job matches." }));
    replace(pager,
      h("button", { type: "button", class: "small", "data-page": "prev", disabled: page === 0,
        onclick: () => { page -= 1; drawHistory(); } }, "← Newer"),
      h("span", { class: "muted" }, `page ${page + 1}`),
      h("button", { type: "button", class: "small", "data-page": "next", disabled: !data.next_cursor,
        onclick: () => { page += 1; drawHistory(); } }, "Older →"));
    newCount = 0;
    replace(newer);
  }

  const form = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const values = new FormData(form);
    for (const key of Object.keys(filters)) filters[key] = (values.get(key) || "").trim();
    cursors.length = 1;
    page = 0;
    ctx.guard(null, drawHistory);
  } },
  select("status", STATUSES, filters.status),
  select("job_type", TYPES, filters.job_type),
  h("input", { name: "account_key", placeholder: "account key", "aria-label": "account key",
    maxlength: 64 }),
  h("button", { type: "submit", class: "small" }, "Filter"));

  for (const job of await loadActive()) {
    if (job.parent_job_id) hiddenChildren += 1;
    else active.set(job.job_id, job);
  }
  drawActive();
  await drawHistory();
  container.append(
    h("h1", {}, "Jobs"),
    section("Active", activeBody),
    section("History", form, newer, historyBody, pager),
  );

  return listen(ctx.stream, {
    job: (event) => {
      const change = event.detail;
      if (change.change === "created" && !change.parent_job_id) {
        active.set(change.job_id, { ...change, created_at: new Date(change.at * 1000).toISOString() });
        drawActive();
        if (page === 0) {
          newCount += 1;
          replace(newer, h("button", { type: "button", class: "link", onclick: () => drawHistory() },
            `${newCount} new job(s) – show`));
        }
        return;
      }
      const known = active.get(change.job_id);
      if (known && !known.leaving) {
        Object.assign(known, { status: change.status, progress: change.progress });
        if (FINISHED.has(change.status)) ended(change);
        else if (change.change === "status") confirm(change.job_id);
      }
      updateProgress(container, change);
    },
    snapshot: async () => {
      // Back from a gap in the stream: reload what is shown.
      active.clear();
      hiddenChildren = 0;
      for (const job of await loadActive()) {
        if (job.parent_job_id) hiddenChildren += 1;
        else active.set(job.job_id, job);
      }
      drawActive();
    },
  });
}
