// Building DOM without innerHTML: every piece of data lands as text, never as markup.

export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function svgEl(tag, attrs = {}, ...children) {
  return h(`svg:${tag}`, attrs, ...children);
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function table(columns, rows, { empty = "Nothing here.", caption = null } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) =>
    h("th", { class: c.class, scope: "col" }, c.title))));
  const body = h("tbody", {}, rows.length
    ? rows
    : h("tr", {}, h("td", { class: "empty", colspan: columns.length }, empty)));
  return h("div", { class: "table-wrap" }, h("table", {}, caption && h("caption", {}, caption), head, body));
}
