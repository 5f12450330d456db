// One job: parameters, result, error, attempts, a timeline from its own timestamps, children.
import { del, get } from "../api.js";
import { h, replace, table } from "../dom.js";
import { duration, label, number, shortId, statusBadge, time } from "../format.js";
import {
  FINISHED, JOB_COLUMNS, cancelButton, jobRow, listen, progressBar, section, throttle,
  updateProgress,
} from "./common.js";

const CHILD_PAGE = 50;

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// Derived from the job's own fields, so it follows whatever the engine records.
function timeline(job) {
  const steps = [{ what: "created", at: job.created_at, note: `queue ${job.queue}, priority ${job.priority}` }];
  if (job.started_at) {
    steps.push({ what: "started", at: job.started_at,
      note: `waited ${duration(job.created_at, job.started_at)}` });
  }
  if (job.attempts > 1) {
    steps.push({ what: `attempt ${job.attempts}`, at: null,
      note: `${job.attempts - 1} earlier attempt(s) failed or lost their worker` });
  }
  if (job.completed_at) {
    steps.push({ what: job.status, at: job.completed_at,
      note: job.started_at ? `ran ${duration(job.started_at, job.completed_at)}` : "" });
  } else if (job.status === "running") {
    steps.push({ what: "running", at: null, note: `for ${duration(job.started_at, null)}, ${job.progress}% done` });
  } else if (job.status === "pending" && job.error_message) {
    steps.push({ what: "waiting to retry", at: null, note: job.error_message });
  }
  return h("ol", { class: "timeline" }, steps.map((step) => h("li", { class: `step step-${step.what.split(" ")[0]}` },
    h("strong", {}, step.what), " ", step.at ? time(step.at) : null,
    step.note ? h("span", { class: "muted" }, ` · ${step.note}`) : null)));
}

function facts(job) {
  const rows = [
    ["Type", label(job.job_type)],
    ["Status", h("span", { "data-job-status": job.job_id }, statusBadge(job.status))],
    ["Progress", progressBar(job)],
    ["Account", job.account_key ? h("a", { href: `#/accounts/${job.account_key}` }, job.account_key) : "–"],
    ["Attempts", String(job.attempts)],
    ["Parent", job.parent_job_id ? h("a", { href: `#/jobs/${job.parent_job_id}`, class: "mono" }, shortId(job.parent_job_id)) : "–"],
    ["Re-run of", job.retry_of_job_id ? h("a", { href: `#/jobs/${job.retry_of_job_id}`, class: "mono" }, shortId(job.retry_of_job_id)) : "–"],
  ];
  return h("dl", { class: "facts" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

function outcome(result) {
  if (!result || result.accounts_total === undefined) return null;
  return h("div", { class: "totals" },
    [["succeeded", "completed"], ["failed", "failed"], ["cancelled", "cancelled"]].map(([key, status]) =>
      h("span", { class: "total" }, statusBadge(status), h("strong", {}, number.format(result[key] || 0)))),
    h("span", { class: "muted" }, `of ${number.format(result.accounts_total)} accounts`));
}

export async function render(container, [jobId], ctx) {
  let job = await get(`/api/jobs/${jobId}`);
  const head = h("div");
  const body = h("div");
  const childrenBox = h("div");
  const childPager = h("div", { class: "pager" });
  const cursors = [null];
  let childPage = 0;
  let hasChildren = false;

  function drawHead() {
    const actions = [];
    const cancel = cancelButton(ctx, job, (j) => { job = j; draw(); });
    if (cancel) actions.push(cancel);
    if (ctx.canWrite && FINISHED.has(job.status) && !job.parent_job_id) {
      const remove = h("button", { type: "button", class: "small write", onclick: () => {
        if (!window.confirm(`Delete job ${shortId(job.job_id)} from the history?`)) return;
        ctx.guard(remove, async () => { await del(`/api/jobs/${job.job_id}`); ctx.navigate("#/jobs"); });
      } }, "Delete");
      actions.push(remove);
    }
    replace(head, h("div", { class: "title-row" },
      h("h1", {}, `${label(job.job_type)} `, h("span", { class: "mono muted" }, shortId(job.job_id))),
      h("div", { class: "actions" }, actions)));
  }

  function draw() {
    drawHead();
    replace(body,
      h("div", { class: "grid-2" }, section("Job", facts(job)), section("Timeline", timeline(job))),
      job.error_message ? section("Error", h("pre", { class: "json error-text" }, job.error_message)) : null,
      h("div", { class: "grid-2" }, section("Parameters", json(job.params)),
        section("Result", outcome(job.result), job.result ? json(job.result) : h("p", { class: "muted" }, "No result yet."))));
  }

  async function drawChildren() {
    const page = await get("/api/jobs", { parent_job_id: jobId, limit: CHILD_PAGE, cursor: cursors[childPage] });
    hasChildren = hasChildren || page.items.length > 0;
    cursors[childPage + 1] = page.next_cursor;
    replace(childrenBox, hasChildren ? section("Children", table(JOB_COLUMNS,
      page.items.map((child) => jobRow(ctx, child)), { empty: "No children." }), childPager) : null);
    replace(childPager,
      h("button", { type: "button", class: "small", disabled: childPage === 0,
        onclick: () => { childPage -= 1; drawChildren(); } }, "← Newer"),
      h("span", { class: "muted" }, `page ${childPage + 1}`),
      h("button", { type: "button", class: "small", disabled: !page.next_cursor,
        onclick: () => { childPage += 1; drawChildren(); } }, "Older →"));
  }

  draw();
  await drawChildren();
  container.append(head, body, childrenBox);

  const reload = throttle(async () => {
    const fresh = await get(`/api/jobs/${jobId}`).catch(() => null);
    if (!fresh || !container.isConnected) return;
    job = fresh;
    draw();
  }, 500);
  const reloadChildren = throttle(() => drawChildren().catch(() => null), 2000);
  return listen(ctx.stream, {
    job: (event) => {
      const change = event.detail;
      if (change.job_id === jobId) {
        if (FINISHED.has(job.status) && !FINISHED.has(change.status)) return;  // arrived late
        updateProgress(container, change);
        // A status change is worth a fresh read: it may carry a result, and the record is
        // the truth should an event describe the job as it was before its commit.
        if (change.change === "status" || change.status !== job.status) reload();
        else job.progress = Math.max(job.progress, change.progress);
      } else if (change.parent_job_id === jobId) {
        updateProgress(childrenBox, change);
        if (change.change === "created") reloadChildren();
      }
    },
    snapshot: () => { reload(); reloadChildren(); },
  });
}

