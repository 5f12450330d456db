// Overview: queues, workers (and pods), jobs by status over 24 h, schedules, unsent jobs.
import { get } from "../api.js";
import { barChart, chartWidth } from "../charts.js";
import { h, replace, table } from "../dom.js";
import { age, number, shortId, statusBadge, time } from "../format.js";
import { listen, section, throttle } from "./common.js";

const STATUSES = ["completed", "failed", "cancelled", "running", "pending"];

function queuesPanel(data) {
  return h("div", { class: "tiles" }, data.queues.map((q) => {
    const oldest = q.oldest_sent_at ? Date.now() / 1000 - q.oldest_sent_at : q.oldest_age_seconds;
    return h("div", { class: ["tile", q.depth > 0 && "busy"], "data-queue": q.name },
      h("span", { class: "tile-label" }, `queue ${q.name}`),
      h("span", { class: "tile-value" }, number.format(q.depth)),
      h("span", { class: "tile-sub" }, q.depth ? `oldest waiting ${age(oldest)}` : "empty"));
  }));
}

function workersPanel(data) {
  const rows = data.workers.map((w) => h("tr", { "data-worker": w.hostname },
    h("td", {}, w.pool),
    h("td", { class: "mono" }, w.hostname),
    h("td", { class: "hide-sm" }, w.queues.join(", ")),
    h("td", {}, `${w.active} / ${w.concurrency}`),
    h("td", { class: "hide-sm" }, time(w.last_heartbeat, { rel: true })),
    h("td", {}, h("span", { class: `state ${w.up ? "up" : "down"}` }, w.up ? "up" : "down"))));
  const parts = [table([
    { title: "Pool" }, { title: "Worker" }, { title: "Queues", class: "hide-sm" },
    { title: "Busy" }, { title: "Heartbeat", class: "hide-sm" }, { title: "State" },
  ], rows, { empty: "No worker has sent a heartbeat recently." })];
  if (data.pods) {
    const podRows = data.pods.flatMap((pool) => pool.pods.map((p) => h("tr", {},
      h("td", {}, pool.pool), h("td", { class: "mono" }, p.name),
      h("td", {}, h("span", { class: `state ${p.ready ? "up" : "down"}` }, p.ready ? "ready" : p.phase)),
      h("td", {}, String(p.restarts)), h("td", {}, age(p.age_seconds)))));
    parts.push(h("h3", {}, "Pods"), table([
      { title: "Pool" }, { title: "Pod" }, { title: "Ready" }, { title: "Restarts" }, { title: "Age" },
    ], podRows, { empty: data.pods_error || "No worker pods found." }));
  }
  return parts;
}

function jobsChart(overview) {
  const labels = overview.hours.map((bucket) => new Date(bucket.hour).toLocaleTimeString(undefined,
    { hour: "2-digit", minute: "2-digit" }));
  const stacks = STATUSES.map((status) => ({
    name: status, className: `s-${status}`,
    values: overview.hours.map((bucket) => bucket.counts[status] || 0),
  }));
  const totals = h("div", { class: "totals" }, STATUSES.map((status) => h("a", {
    href: "#/jobs", class: "total", "data-total": status,
  }, statusBadge(status), h("strong", {}, number.format(overview.totals[status] || 0)))));
  return [totals, barChart("Jobs created per hour, by current status", labels, stacks,
    { width: chartWidth(1), height: 220 })];
}

function schedulesPanel(schedules) {
  return table([
    { title: "Entry" }, { title: "When (UTC)" }, { title: "Last run", class: "hide-sm" },
    { title: "Last job", class: "hide-sm" }, { title: "Next run" },
  ], schedules.map((s) => h("tr", { "data-schedule": s.name },
    h("td", {}, s.name),
    h("td", { class: "mono" }, s.cron || `every ${age(s.interval_seconds)}`),
    h("td", { class: "hide-sm" }, s.last_run_at ? time(s.last_run_at, { rel: true })
      : h("span", { class: "muted" }, "not yet")),
    h("td", { class: "hide-sm" }, s.last_job_id && s.job_type
      ? h("span", {}, h("a", { href: `#/jobs/${s.last_job_id}`, class: "mono" }, shortId(s.last_job_id)), " ",
        s.last_job_status ? statusBadge(s.last_job_status) : null)
      : "–"),
    h("td", {}, time(s.next_run_at, { rel: true })))));
}

// Jobs are handed to the broker within a second or two of their commit; some waiting longer
// means the broker (or every relay of unsent jobs) is not keeping up.
const UNSENT_WARN_SECONDS = 30;

function unsentBanner(overview) {
  const oldest = overview.oldest_unsent_at ? new Date(overview.oldest_unsent_at) : null;
  if (!overview.unsent_jobs || !oldest || Date.now() - oldest < UNSENT_WARN_SECONDS * 1000) return null;
  return h("div", { class: "banner warn", "data-unsent": overview.unsent_jobs },
    h("strong", {}, `${number.format(overview.unsent_jobs)} job(s) not yet handed to the broker`),
    " (the oldest waiting since ", time(overview.oldest_unsent_at, { rel: true }),
    "). They are sent as soon as Redis answers; if this stays, check the broker and the api and scheduler processes.");
}

export async function render(container, _params, ctx) {
  const [overview, schedules, queues, workers] = await Promise.all([
    get("/api/overview"), get("/api/schedules"),
    ctx.live.queues ? Promise.resolve(ctx.live.queues) : get("/api/queues"),
    ctx.live.workers ? Promise.resolve(ctx.live.workers) : get("/api/workers"),
  ]);
  const banner = h("div", {}, unsentBanner(overview));
  const queuesBox = h("div", {}, queuesPanel(queues));
  const workersBox = h("div", {}, workersPanel(workers));
  const chartBox = h("div", {}, jobsChart(overview));
  const deadBox = h("p", { class: "muted" });
  const showDead = (count) => replace(deadBox, count
    ? h("a", { href: "#/dead-letters" }, `${number.format(count)} dead letter(s) waiting for a re-run`)
    : "No dead letters.");
  showDead(overview.dead_letters);
  container.append(
    h("h1", {}, "Overview"), banner,
    section("Queues", queuesBox),
    section("Jobs, last 24 hours", chartBox, deadBox),
    section("Workers", workersBox),
    section("Schedules", h("div", {}, schedulesPanel(schedules.schedules))),
  );
  const refreshJobs = throttle(async () => {
    const fresh = await get("/api/overview").catch(() => null);
    if (!fresh || !container.isConnected) return;
    replace(chartBox, jobsChart(fresh));
    replace(banner, unsentBanner(fresh));
    showDead(fresh.dead_letters);
  }, 3000);
  // Heartbeat ages are shown relative to now: redraw them between the stream's updates.
  let latestWorkers = workers;
  const ticker = setInterval(() => replace(workersBox, workersPanel(latestWorkers)), 5000);
  const stop = listen(ctx.stream, {
    queues: (event) => replace(queuesBox, queuesPanel(event.detail)),
    workers: (event) => {
      latestWorkers = event.detail;
      replace(workersBox, workersPanel(event.detail));
    },
    snapshot: (event) => {
      latestWorkers = event.detail.workers;
      replace(queuesBox, queuesPanel(event.detail.queues));
      replace(workersBox, workersPanel(event.detail.workers));
      refreshJobs();
    },
    job: (event) => { if (event.detail.change !== "progress") refreshJobs(); },
  });
  return () => {
    clearInterval(ticker);
    stop();
  };
}

