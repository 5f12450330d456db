// Small SVG charts drawn from data (no library): lines over dates, stacked bars per bucket.
// Hovering a point or bar shows its values (an SVG <title>, allowed by the CSP).
import { h, svgEl } from "./dom.js";
import { number } from "./format.js";

const PAD = { top: 12, right: 12, bottom: 26, left: 52 };

// Charts are drawn at the pixel width they will occupy, so their text is never scaled up or
// down: the whole page width on phones, `fraction` of it on wider screens.
export function chartWidth(fraction = 1) {
  const view = document.getElementById("view");
  const inner = Math.max(280, (view ? view.clientWidth : 1200) - 64);
  return Math.round(inner < 700 ? inner : inner * fraction - 16);
}

// A round top for the y axis whose four tick steps are round numbers too (whole ones for counts).
function niceMax(value) {
  if (value <= 0) return 4;
  const step = value / 4;
  const magnitude = 10 ** Math.floor(Math.log10(step));
  for (const factor of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    const candidate = factor * magnitude;
    if (candidate >= step && Number.isInteger(candidate)) return candidate * 4;
  }
  return 40 * magnitude;
}

function yAxis(min, max, innerHeight, WIDTH) {
  const ticks = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = min + ((max - min) * i) / 4;
    const y = PAD.top + innerHeight - (innerHeight * i) / 4;
    ticks.push(svgEl("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }));
    ticks.push(svgEl("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" },
      compact(value)));
  }
  return ticks;
}

function compact(value) {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${Math.round(value / 1e3)}k`;
  // Counts: whole numbers once they are big enough that a tenth means nothing.
  return number.format(abs >= 20 ? Math.round(value) : Math.round(value * 10) / 10);
}

function xLabels(labels, x, WIDTH, HEIGHT) {
  const every = Math.max(1, Math.ceil(labels.length / Math.max(2, Math.floor(WIDTH / 90))));
  const last = labels.length - 1;
  // The first and last labels are anchored inside the chart so they are never cut off.
  const anchor = (i) => (i === 0 && last > 0 ? "start" : i === last && last > 0 ? "end" : "middle");
  return labels.map((text, i) => (i % every === 0 || i === last)
    && (i === last || last - i >= every)
    ? svgEl("text", { x: x(i), y: HEIGHT - 6, class: "tick", "text-anchor": anchor(i) }, text)
    : null);
}

function frame(title, body, legend, WIDTH, HEIGHT) {
  return h("figure", { class: "chart" },
    h("figcaption", {}, title, legend),
    svgEl("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title,
    }, body));
}

// series: [{name, values:[number|null], className}]; labels: x-axis text per point.
export function lineChart(title, labels, series, { width = chartWidth(1 / 3), height = 180 } = {}) {
  const WIDTH = width;
  const HEIGHT = height;
  const innerWidth = WIDTH - PAD.left - PAD.right;
  const innerHeight = HEIGHT - PAD.top - PAD.bottom;
  const all = series.flatMap((s) => s.values).filter((v) => v !== null);
  if (!all.length) return h("figure", { class: "chart empty" }, h("figcaption", {}, title), h("p", { class: "muted" }, "No data yet."));
  let min = Math.min(...all);
  let max = Math.max(...all);
  if (min === max) { min = Math.max(0, min - 1); max += 1; }
  const span = max - min;
  min = Math.max(0, min - span * 0.1);
  max += span * 0.1;
  const x = (i) => PAD.left + (labels.length === 1 ? innerWidth / 2 : (innerWidth * i) / (labels.length - 1));
  const y = (v) => PAD.top + innerHeight - ((v - min) / (max - min)) * innerHeight;
  const lines = series.map((s) => {
    const points = s.values.map((v, i) => (v === null ? null : [x(i), y(v)])).filter(Boolean);
    const d = points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("");
    const dots = s.values.map((v, i) => v === null ? null
      : svgEl("circle", { cx: x(i), cy: y(v), r: 3, class: `dot ${s.className}` },
        svgEl("title", {}, `${labels[i]}: ${number.format(v)} ${s.name}`)));
    return [svgEl("path", { d, class: `line ${s.className}` }), dots];
  });
  const legend = series.length > 1 ? h("span", { class: "legend" }, series.map((s) =>
    h("span", { class: `key ${s.className}` }, s.name))) : null;
  return frame(title, [yAxis(min, max, innerHeight, WIDTH), lines, xLabels(labels, x, WIDTH, HEIGHT)],
    legend, WIDTH, HEIGHT);
}

// stacks: [{name, values:[number], className}] stacked bottom-up per label.
export function barChart(title, labels, stacks, { width = chartWidth(1 / 2), height = 200 } = {}) {
  const WIDTH = width;
  const HEIGHT = height;
  const innerWidth = WIDTH - PAD.left - PAD.right;
  const innerHeight = HEIGHT - PAD.top - PAD.bottom;
  const totals = labels.map((_, i) => stacks.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const slot = innerWidth / Math.max(labels.length, 1);
  const barWidth = Math.max(2, slot * 0.72);
  const x = (i) => PAD.left + slot * i + slot / 2;
  const bars = labels.map((text, i) => {
    let base = 0;
    const parts = stacks.map((s) => {
      const value = s.values[i] || 0;
      if (!value) return null;
      const top = base + value;
      const rect = svgEl("rect", {
        x: x(i) - barWidth / 2, width: barWidth,
        y: PAD.top + innerHeight - (top / max) * innerHeight,
        height: Math.max(1, (value / max) * innerHeight),
        class: `bar ${s.className}`,
      }, svgEl("title", {}, `${text}: ${number.format(value)} ${s.name}`));
      base = top;
      return rect;
    });
    return svgEl("g", {}, parts);
  });
  const legend = h("span", { class: "legend" }, stacks.map((s) =>
    h("span", { class: `key ${s.className}` }, s.name)));
  return frame(title, [yAxis(0, max, innerHeight, WIDTH), bars, xLabels(labels, x, WIDTH, HEIGHT)],
    legend, WIDTH, HEIGHT);
}
