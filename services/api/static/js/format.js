// Times: the browser's own zone (DST-correct through Intl), with the UTC value on hover.
import { h } from "./dom.js";

const local = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const shortLocal = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});
const utc = new Intl.DateTimeFormat("en-GB", {
  dateStyle: "medium", timeStyle: "medium", timeZone: "UTC",
});
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  return typeof value === "number" ? new Date(value * 1000) : new Date(value);
}

export function time(value, { short = false, rel = false } = {}) {
  const date = toDate(value);
  if (!date || Number.isNaN(date.getTime())) return h("span", { class: "muted" }, "–");
  const text = rel ? relativeText(date) : (short ? shortLocal : local).format(date);
  return h("time", { datetime: date.toISOString(), title: `${utc.format(date)} UTC` }, text);
}

export function relativeText(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(Math.round(seconds), "second");
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400 * 2) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function duration(startIso, endIso) {
  const start = toDate(startIso);
  const end = toDate(endIso) || new Date();
  if (!start) return "–";
  return age(Math.max(0, (end - start) / 1000));
}

export const number = new Intl.NumberFormat();

export function label(jobType) {
  return jobType.replaceAll("_", " ");
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, "data-status": status }, status);
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "–";
}
