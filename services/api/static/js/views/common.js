// Pieces shared by the views: progress bars, job rows, live subscriptions.
import { post } from "../api.js";
import { h, replace } from "../dom.js";
import { label, shortId, statusBadge, time } from "../format.js";

export const FINISHED = new Set(["completed", "failed", "cancelled"]);

export function progressBar(job) {
  const fill = h("span", { class: "fill" });
  fill.style.width = `${job.progress}%`;
  return h("span", {
    class: `progress progress-${job.status}`, role: "progressbar", "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-valuenow": job.progress, "data-job-progress": job.job_id,
    title: `${job.progress}%`,
  }, fill, h("span", { class: "pct" }, `${job.progress}%`));
}

// Changes of one job can arrive out of order when different processes wrote them (a worker's
// progress and the commit that ended the job): an ended job never goes back to running, and
// progress never goes down.
function isStale(root, change) {
  const shown = root.querySelector(`[data-job-status="${change.job_id}"] .status`);
  const status = shown?.dataset.status;
  return Boolean(status && FINISHED.has(status) && !FINISHED.has(change.status));
}

export function updateProgress(root, change) {
  if (isStale(root, change)) return;
  for (const bar of root.querySelectorAll(`[data-job-progress="${change.job_id}"]`)) {
    if (Number(bar.getAttribute("aria-valuenow")) > change.progress && change.status === bar.className.split("-").at(-1)) continue;
    bar.className = `progress progress-${change.status}`;
    bar.setAttribute("aria-valuenow", change.progress);
    bar.title = `${change.progress}%`;
    bar.querySelector(".fill").style.width = `${change.progress}%`;
    bar.querySelector(".pct").textContent = `${change.progress}%`;
  }
  for (const cell of root.querySelectorAll(`[data-job-status="${change.job_id}"]`)) {
    replace(cell, statusBadge(change.status));
  }
}

export function jobLink(job) {
  return h("a", { href: `#/jobs/${job.job_id}`, class: "mono", title: job.job_id }, shortId(job.job_id));
}

export function cancelButton(ctx, job, onDone) {
  if (!ctx.canWrite || FINISHED.has(job.status)) return null;
  const button = h("button", {
    type: "button", class: "danger small write", "data-cancel": job.job_id,
    onclick: () => {
      if (!window.confirm(`Cancel ${label(job.job_type)} job ${shortId(job.job_id)}?`)) return;
      ctx.guard(button, async () => {
        const cancelled = await post(`/api/jobs/${job.job_id}/cancel`);
        ctx.toast(`Job ${shortId(job.job_id)} ${cancelled.status}.`);
        if (onDone) onDone(cancelled);
      });
    },
  }, "Cancel");
  return button;
}

export function jobRow(ctx, job, { cancel = false, onCancelled = null } = {}) {
  return h("tr", { "data-job-id": job.job_id },
    h("td", {}, jobLink(job)),
    h("td", {}, label(job.job_type)),
    h("td", { "data-job-status": job.job_id }, statusBadge(job.status)),
    h("td", { class: "wide" }, progressBar(job)),
    h("td", { class: "hide-sm" }, job.account_key
      ? h("a", { href: `#/accounts/${job.account_key}` }, job.account_key) : "–"),
    h("td", { class: "hide-sm" }, time(job.created_at, { short: true })),
    cancel ? h("td", {}, cancelButton(ctx, job, onCancelled)) : null);
}

export const JOB_COLUMNS = [
  { title: "Job" }, { title: "Type" }, { title: "Status" }, { title: "Progress", class: "wide" },
  { title: "Account", class: "hide-sm" }, { title: "Created", class: "hide-sm" },
];

// Listen to stream events until the view is left; returns the function that stops listening.
// What arrived while the view was loading is handed over first.
export function listen(stream, handlers) {
  for (const event of stream.backlog || []) handlers[event.type]?.(event);
  stream.backlog = null;
  const entries = Object.entries(handlers);
  for (const [type, handler] of entries) stream.addEventListener(type, handler);
  return () => { for (const [type, handler] of entries) stream.removeEventListener(type, handler); };
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
