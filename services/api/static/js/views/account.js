// One account: followers / following / posts over time, daily activity, its recent jobs.
import { get } from "../api.js";
import { barChart, lineChart } from "../charts.js";
import { h, replace, table } from "../dom.js";
import { number, time } from "../format.js";
import { startButtons } from "./accounts.js";
import { JOB_COLUMNS, jobRow, listen, section, throttle, updateProgress } from "./common.js";

const RANGES = { "30 days": 30, "90 days": 90, "1 year": 365 };

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

function dayLabel(iso) {
  // A UTC date, shown as such: metrics are kept per UTC day.
  return new Date(`${iso}T00:00:00Z`).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
}

function charts(metrics) {
  const snapshots = metrics.snapshots;
  const labels = snapshots.map((s) => dayLabel(s.date));
  const latest = snapshots.at(-1);
  const first = snapshots[0];
  const delta = (key) => (latest && first ? latest[key] - first[key] : 0);
  const summary = latest ? h("div", { class: "tiles" }, ["followers", "following", "posts"].map((key) =>
    h("div", { class: "tile" }, h("span", { class: "tile-label" }, key),
      h("span", { class: "tile-value" }, number.format(latest[key])),
      h("span", { class: "tile-sub" }, `${delta(key) >= 0 ? "+" : ""}${number.format(delta(key))} in range`)))) : null;
  const daily = metrics.daily;
  const dayLabels = daily.map((d) => dayLabel(d.date));
  return [
    summary,
    h("div", { class: "grid-3" },
      lineChart("Followers", labels, [{ name: "followers", className: "c1", values: snapshots.map((s) => s.followers) }]),
      lineChart("Following", labels, [{ name: "following", className: "c2", values: snapshots.map((s) => s.following) }]),
      lineChart("Posts", labels, [{ name: "posts", className: "c3", values: snapshots.map((s) => s.posts) }])),
    h("div", { class: "grid-2" },
      barChart("Posts per day", dayLabels, [{ name: "posts", className: "c3", values: daily.map((d) => d.posts) }]),
      barChart("Engagement per day", dayLabels, [
        { name: "likes", className: "c1", values: daily.map((d) => d.likes) },
        { name: "reposts", className: "c2", values: daily.map((d) => d.reposts) },
        { name: "replies", className: "c4", values: daily.map((d) => d.replies) },
      ])),
  ];
}

export async function render(container, [key], ctx) {
  let days = 90;
  const [account, jobs] = await Promise.all([
    get(`/api/accounts/${key}`), get("/api/jobs", { account_key: key, limit: 10 }),
  ]);
  const chartsBox = h("div", { class: "charts" });
  const jobsBox = h("div");

  async function drawCharts() {
    const to = new Date();
    const from = new Date(to.getTime() - (days - 1) * 86400 * 1000);
    const metrics = await get(`/api/accounts/${key}/metrics`, { from: isoDate(from), to: isoDate(to) });
    replace(chartsBox, metrics.snapshots.length || metrics.daily.length
      ? charts(metrics) : h("p", { class: "muted" }, "No metrics yet: start a scrape or a backfill."));
  }

  async function drawJobs(list) {
    const items = list || (await get("/api/jobs", { account_key: key, limit: 10 })).items;
    replace(jobsBox, table(JOB_COLUMNS, items.map((job) => jobRow(ctx, job)), { empty: "No jobs yet." }));
  }

  const ranges = h("div", { class: "segmented", role: "group", "aria-label": "range" },
    Object.entries(RANGES).map(([name, value]) => h("button", {
      type: "button", class: value === days ? "small active" : "small",
      onclick: (event) => {
        days = value;
        for (const b of ranges.children) b.classList.toggle("active", b === event.currentTarget);
        ctx.guard(null, drawCharts);
      },
    }, name)));

  await Promise.all([drawCharts(), drawJobs(jobs.items)]);
  container.append(
    h("div", { class: "title-row" },
      h("h1", {}, account.key, h("span", { class: "muted" }, ` ${account.platform} · ${account.handle}`)),
      h("div", { class: "actions" }, startButtons(ctx, account))),
    h("p", { class: "muted small" }, "Registered ", time(account.created_at),
      account.base_url ? ` · API root ${account.base_url}` : ""),
    section("Metrics", ranges, chartsBox),
    section("Recent jobs", jobsBox),
  );
  const refreshJobs = throttle(() => drawJobs().catch(() => null), 500);
  const refreshCharts = throttle(() => drawCharts().catch(() => null), 1000);
  return listen(ctx.stream, {
    job: (event) => {
      const change = event.detail;
      if (change.account_key !== key) return;
      if (change.change === "created") refreshJobs();
      updateProgress(jobsBox, change);
      if (change.status === "completed") refreshCharts();
    },
  });
}
