// Accounts: the registry, adding one, and starting a scrape or a backfill.
import { get, post } from "../api.js";
import { h, replace, table } from "../dom.js";
import { number, shortId, time } from "../format.js";
import { section } from "./common.js";

// Rows drawn at first; "show more" and the filter box reach the rest (a registry can hold
// thousands, and drawing them all would slow the page for nothing).
const PAGE_ROWS = 100;

export function startButtons(ctx, account) {
  if (!ctx.canWrite) return null;
  const scrape = h("button", { type: "button", class: "small primary write", "data-scrape": account.key,
    onclick: () => ctx.guard(scrape, async () => {
      const job = await post(`/api/jobs/scrape-account/${account.key}`);
      ctx.toast(`Scraping ${account.key}: job ${shortId(job.job_id)}. `,
        { link: { href: `#/jobs/${job.job_id}`, text: "Watch" } });
    }) }, "Scrape");
  const days = h("input", { type: "number", min: 1, max: 365, value: 30, class: "days",
    "aria-label": `days to backfill for ${account.key}`, title: "UTC days to backfill" });
  const backfill = h("button", { type: "button", class: "small write", "data-backfill": account.key,
    onclick: () => ctx.guard(backfill, async () => {
      const job = await post(`/api/jobs/backfill-account/${account.key}`, { days: Number(days.value) });
      ctx.toast(`Backfilling ${days.value} days of ${account.key}: job ${shortId(job.job_id)}. `,
        { link: { href: `#/jobs/${job.job_id}`, text: "Watch" } });
    }) }, "Backfill");
  return h("span", { class: "actions" }, scrape, h("span", { class: "backfill" }, days, backfill));
}

function addForm(ctx, onAdded) {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "add-account write", onsubmit: (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    if (!values.base_url) delete values.base_url;
    ctx.guard(form.querySelector("button"), async () => {
      error.hidden = true;
      try {
        const account = await post("/api/accounts", values);
        form.reset();
        ctx.toast(`Added ${account.key}.`);
        onAdded(account);
      } catch (problem) {
        error.hidden = false;
        error.textContent = problem.message;
      }
    });
  } },
  h("input", { name: "key", required: true, placeholder: "key, e.g. gristmill-news", pattern: "[a-z0-9][a-z0-9_-]{0,63}",
    "aria-label": "key" }),
  h("select", { name: "platform", "aria-label": "platform" },
    h("option", { value: "mastodon" }, "Mastodon"), h("option", { value: "bluesky" }, "Bluesky")),
  h("input", { name: "handle", required: true, placeholder: "user@instance or name.bsky.social", "aria-label": "handle" }),
  h("input", { name: "base_url", placeholder: "API root (optional)", "aria-label": "base URL" }),
  h("button", { type: "submit", class: "primary" }, "Add account"),
  error);
  return form;
}

export async function render(container, _params, ctx) {
  let accounts = await get("/api/accounts");
  const box = h("div");
  const count = h("span", { class: "muted" });
  const more = h("div", { class: "pager" });
  let shown = PAGE_ROWS;
  const search = h("input", { type: "search", placeholder: "Filter by key or handle", "aria-label": "filter accounts",
    oninput: () => { shown = PAGE_ROWS; draw(); } });

  function draw() {
    const needle = search.value.trim().toLowerCase();
    const matching = needle
      ? accounts.filter((a) => a.key.includes(needle) || a.handle.toLowerCase().includes(needle))
      : accounts;
    replace(count, matching.length > shown
      ? `${number.format(matching.length)} accounts, ${shown} shown`
      : `${number.format(matching.length)} accounts`);
    replace(more, matching.length > shown
      ? h("button", { type: "button", class: "small", "data-more": "accounts",
        onclick: () => { shown += PAGE_ROWS * 5; draw(); } }, "Show more")
      : null);
    replace(box, table([
      { title: "Key" }, { title: "Platform" }, { title: "Handle", class: "hide-sm" },
      { title: "Added", class: "hide-sm" }, ctx.canWrite ? { title: "" } : null,
    ].filter(Boolean), matching.slice(0, shown).map((account) => h("tr", { "data-account": account.key },
      h("td", {}, h("a", { href: `#/accounts/${account.key}` }, account.key),
        account.active ? null : h("span", { class: "muted" }, " (inactive)")),
      h("td", {}, account.platform),
      h("td", { class: "hide-sm" }, account.handle),
      h("td", { class: "hide-sm" }, time(account.created_at, { short: true })),
      ctx.canWrite ? h("td", {}, startButtons(ctx, account)) : null)),
    { empty: needle ? "No account matches." : "No accounts yet." }));
  }

  draw();
  container.append(
    h("h1", {}, "Accounts"),
    ctx.canWrite ? section("Add an account", addForm(ctx, (account) => {
      accounts = [...accounts, account].sort((a, b) => (a.key < b.key ? -1 : 1));
      draw();
    })) : null,
    section("Registry", h("div", { class: "toolbar" }, search, count), box, more),
  );
}
