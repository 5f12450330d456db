// Dead letters: jobs that failed for good, each with a re-run button.
import { get, post } from "../api.js";
import { h, replace, table } from "../dom.js";
import { label, shortId, time } from "../format.js";
import { listen, section, throttle } from "./common.js";

const PAGE_SIZE = 25;

export async function render(container, _params, ctx) {
  const box = h("div");
  const pager = h("div", { class: "pager" });
  const cursors = [null];
  let page = 0;

  function rerunButton(letter, row) {
    if (!ctx.canWrite) return null;
    const button = h("button", { type: "button", class: "small primary write", "data-rerun": letter.job_id,
      onclick: () => ctx.guard(button, async () => {
        const job = await post(`/api/jobs/${letter.job_id}/retry`);
        row.remove();
        ctx.toast(`Re-running as job ${shortId(job.job_id)}. `, { link: { href: `#/jobs/${job.job_id}`, text: "Open" } });
      }) }, "Re-run");
    return button;
  }

  async function draw() {
    const data = await get("/api/dead-letters", { limit: PAGE_SIZE, cursor: cursors[page] });
    cursors[page + 1] = data.next_cursor;
    const rows = data.items.map((letter) => {
      const row = h("tr", { "data-dead-letter": letter.job_id });
      row.append(
        h("td", {}, h("a", { href: `#/jobs/${letter.job_id}`, class: "mono" }, shortId(letter.job_id))),
        h("td", {}, label(letter.job_type)),
        h("td", { class: "hide-sm" }, letter.account_key || "–"),
        h("td", { class: "hide-sm" }, String(letter.attempts)),
        h("td", {}, time(letter.created_at, { short: true })),
        h("td", { class: "error-text" }, letter.error_message),
        h("td", {}, rerunButton(letter, row)));
      return row;
    });
    replace(box, table([
      { title: "Job" }, { title: "Type" }, { title: "Account", class: "hide-sm" },
      { title: "Attempts", class: "hide-sm" }, { title: "Failed" }, { title: "Error" }, { title: "" },
    ], rows, { empty: "No dead letters: every job that failed for good has been dealt with." }));
    replace(pager,
      h("button", { type: "button", class: "small", disabled: page === 0,
        onclick: () => { page -= 1; draw(); } }, "← Newer"),
      h("span", { class: "muted" }, `page ${page + 1}`),
      h("button", { type: "button", class: "small", disabled: !data.next_cursor,
        onclick: () => { page += 1; draw(); } }, "Older →"));
  }

  await draw();
  const refresh = throttle(() => { if (page === 0) draw().catch(() => null); }, 2000);
  container.append(h("h1", {}, "Dead letters"), section("Failed for good", box, pager));
  return listen(ctx.stream, {
    // A job that ends `failed` may have just been dead-lettered: show it on the first page.
    job: (event) => { if (event.detail.status === "failed") refresh(); },
  });
}
