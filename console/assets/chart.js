// Hand-written SVG charts for the console: a time series with a left and a right axis, a
// scatter plot for a sweep's cost/queueing frontier, and an editor whose points the user
// drags to shape the sandbox's traffic. Plain DOM, no dependencies.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, attrs) {
  const node = el("text", Object.assign({ x, y }, attrs || {}), parent);
  node.textContent = content;
  return node;
}

// About `count` round tick values covering [lo, hi].
export function niceTicks(lo, hi, count) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  // Up to the first tick at or above hi, so the top tick bounds every value.
  for (let v = Math.ceil(lo / step) * step; ; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (v >= hi - step * 1e-9) break;
  }
  return ticks;
}

// Seconds as 0:45, 12:30 or 3:05:00.
export function formatSeconds(s) {
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

// Round time ticks in seconds (10 s, 1 m, 5 m, 1 h, ...) over [lo, hi].
function timeTicks(lo, hi, count) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
    21600, 43200, 86400];
  const raw = (hi - lo) / Math.max(1, count);
  const step = steps.find((s) => s >= raw) || steps[steps.length - 1];
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) ticks.push(v);
  return ticks;
}

function legend(svg, items, x, y) {
  let at = x;
  for (const item of items) {
    const g = el("g", { class: "legend-item" }, svg);
    el("line", { x1: at, y1: y - 4, x2: at + 18, y2: y - 4, stroke: item.color,
      "stroke-width": 2.5, "stroke-dasharray": item.dash || "" }, g);
    const label = text(g, at + 23, y, item.name, { class: "legend" });
    at += 32 + label.getComputedTextLength() + 14;
  }
}

// A time series chart in `container` (replaced). `options`:
//   times: x values in seconds (ascending); xFormat: (seconds) => label
//   series: [{name, values, color, axis: "left" | "right", step, dash, fill}]
//   leftLabel, rightLabel: axis titles; markers: [{t, label, color}] drawn as ticks on top
//   width, height
export function timeSeries(container, options) {
  const width = options.width || 860;
  const height = options.height || 300;
  const margin = { top: 30, right: 52, bottom: 34, left: 52 };
  const times = options.times;
  container.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": options.label || "chart" }, container);
  if (!times.length) {
    text(svg, width / 2, height / 2, "no data yet", { class: "empty", "text-anchor": "middle" });
    return svg;
  }
  const x0 = times[0];
  const x1 = Math.max(times[times.length - 1], x0 + 1);
  const innerW = width - margin.left - margin.right;
  const innerH = height - margin.top - margin.bottom;
  const sx = (t) => margin.left + ((t - x0) / (x1 - x0)) * innerW;
  const maxOf = (axis) => {
    let m = 0;
    for (const s of options.series) {
      if ((s.axis || "left") !== axis) continue;
      for (const v of s.values) if (v > m) m = v;
    }
    return m;
  };
  const scales = {};
  for (const axis of ["left", "right"]) {
    const ticks = niceTicks(0, Math.max(maxOf(axis) * 1.08, axis === "right" ? 2 : 1), 5);
    const top = ticks[ticks.length - 1];
    scales[axis] = { ticks, sy: (v) => margin.top + innerH - (v / top) * innerH };
  }
  // Grid and axes.
  const grid = el("g", { class: "grid" }, svg);
  for (const v of scales.left.ticks) {
    const y = scales.left.sy(v);
    el("line", { x1: margin.left, x2: width - margin.right, y1: y, y2: y }, grid);
    text(svg, margin.left - 6, y + 4, String(v), { class: "tick", "text-anchor": "end" });
  }
  if (options.series.some((s) => s.axis === "right")) {
    for (const v of scales.right.ticks) {
      text(svg, width - margin.right + 6, scales.right.sy(v) + 4, String(v),
        { class: "tick" });
    }
  }
  for (const t of timeTicks(x0, x1, 8)) {
    const x = sx(t);
    el("line", { x1: x, x2: x, y1: margin.top + innerH, y2: margin.top + innerH + 4,
      class: "axis" }, svg);
    text(svg, x, height - margin.bottom + 18, (options.xFormat || formatSeconds)(t),
      { class: "tick", "text-anchor": "middle" });
  }
  el("line", { x1: margin.left, x2: width - margin.right, y1: margin.top + innerH,
    y2: margin.top + innerH, class: "axis" }, svg);
  if (options.leftLabel) {
    text(svg, 12, margin.top + innerH / 2, options.leftLabel, { class: "axis-label",
      transform: `rotate(-90 12 ${margin.top + innerH / 2})`, "text-anchor": "middle" });
  }
  if (options.rightLabel) {
    const xr = width - 10;
    text(svg, xr, margin.top + innerH / 2, options.rightLabel, { class: "axis-label",
      transform: `rotate(90 ${xr} ${margin.top + innerH / 2})`, "text-anchor": "middle" });
  }
  // Series.
  for (const s of options.series) {
    const sy = scales[s.axis || "left"].sy;
    let d = "";
    s.values.forEach((v, i) => {
      const x = sx(times[i]);
      const y = sy(v);
      if (i === 0) {
        d += `M${x.toFixed(1)},${y.toFixed(1)}`;
      } else if (s.step) {
        d += `H${x.toFixed(1)}V${y.toFixed(1)}`;
      } else {
        d += `L${x.toFixed(1)},${y.toFixed(1)}`;
      }
    });
    if (s.extendTo !== undefined && s.values.length) {
      d += `H${sx(s.extendTo).toFixed(1)}`;
    }
    if (s.fill) {
      const base = sy(0).toFixed(1);
      const area = `${d}V${base}H${sx(times[0]).toFixed(1)}Z`;
      el("path", { d: area, fill: s.color, opacity: 0.12, stroke: "none" }, svg);
    }
    el("path", { d, fill: "none", stroke: s.color, "stroke-width": s.width || 2,
      "stroke-dasharray": s.dash || "", "stroke-linejoin": "round",
      class: `series series-${s.key || ""}` }, svg);
  }
  for (const m of options.markers || []) {
    const x = sx(m.t);
    const mark = el("line", { x1: x, x2: x, y1: margin.top - 6, y2: margin.top + 4,
      stroke: m.color || "#666", "stroke-width": 2, class: "marker" }, svg);
    const title = el("title", {}, mark);
    title.textContent = m.label;
  }
  legend(svg, options.series.filter((s) => s.name), margin.left, 16);
  return svg;
}

// A scatter plot of sweep points: {x, y, frontier, label}. Frontier points are joined.
export function scatter(container, options) {
  const width = options.width || 560;
  const height = options.height || 320;
  const margin = { top: 20, right: 20, bottom: 44, left: 64 };
  container.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart scatter",
    role: "img", "aria-label": options.label || "sweep" }, container);
  const points = options.points;
  if (!points.length) return svg;
  const xs = niceTicks(0, Math.max(...points.map((p) => p.x)) * 1.05 || 1, 5);
  const ys = niceTicks(0, Math.max(...points.map((p) => p.y)) * 1.05 || 1, 5);
  const innerW = width - margin.left - margin.right;
  const innerH = height - margin.top - margin.bottom;
  const sx = (v) => margin.left + (v / xs[xs.length - 1]) * innerW;
  const sy = (v) => margin.top + innerH - (v / ys[ys.length - 1]) * innerH;
  const grid = el("g", { class: "grid" }, svg);
  for (const v of ys) {
    el("line", { x1: margin.left, x2: width - margin.right, y1: sy(v), y2: sy(v) }, grid);
    text(svg, margin.left - 6, sy(v) + 4, String(v), { class: "tick", "text-anchor": "end" });
  }
  for (const v of xs) {
    text(svg, sx(v), height - margin.bottom + 16, String(v),
      { class: "tick", "text-anchor": "middle" });
  }
  el("line", { x1: margin.left, x2: width - margin.right, y1: sy(0), y2: sy(0),
    class: "axis" }, svg);
  text(svg, margin.left + innerW / 2, height - 6, options.xLabel,
    { class: "axis-label", "text-anchor": "middle" });
  text(svg, 14, margin.top + innerH / 2, options.yLabel, { class: "axis-label",
    transform: `rotate(-90 14 ${margin.top + innerH / 2})`, "text-anchor": "middle" });
  const frontier = points.filter((p) => p.frontier).sort((a, b) => a.x - b.x);
  if (frontier.length > 1) {
    el("path", { d: "M" + frontier.map((p) => `${sx(p.x)},${sy(p.y)}`).join("L"),
      class: "frontier-line", fill: "none" }, svg);
  }
  for (const p of points) {
    const dot = el("circle", { cx: sx(p.x), cy: sy(p.y), r: p.frontier ? 5.5 : 4,
      class: p.frontier ? "dot frontier" : "dot" }, svg);
    const title = el("title", {}, dot);
    title.textContent = p.label;
  }
  return svg;
}

// An editor for a points: shape. `values` are in-flight counts, one every `every`
// seconds; dragging a point calls onChange(values) as it moves and onCommit(values) when
// it is let go. Returns {setValues}.
export function pointsEditor(container, options) {
  const width = options.width || 860;
  const height = options.height || 170;
  const margin = { top: 14, right: 52, bottom: 26, left: 52 };
  let values = options.values.slice();
  const innerW = width - margin.left - margin.right;
  const innerH = height - margin.top - margin.bottom;
  container.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart editor",
    role: "application", "aria-label": "traffic shape: drag the points" }, container);
  const top = () => Math.max(options.max || 0, ...values, 1);
  let scaleTop = niceTicks(0, top() * 1.25, 4).slice(-1)[0];
  const sx = (i) => margin.left + (i / Math.max(1, values.length - 1)) * innerW;
  const sy = (v) => margin.top + innerH - (v / scaleTop) * innerH;
  const layer = el("g", {}, svg);
  let dragging = -1;

  function draw() {
    layer.replaceChildren();
    for (const v of niceTicks(0, scaleTop, 4)) {
      el("line", { x1: margin.left, x2: width - margin.right, y1: sy(v), y2: sy(v),
        class: "grid-line" }, layer);
      text(layer, margin.left - 6, sy(v) + 4, String(v), { class: "tick", "text-anchor": "end" });
    }
    values.forEach((_, i) => {
      if (i % Math.ceil(values.length / 12) === 0) {
        text(layer, sx(i), height - 8, formatSeconds(i * options.every),
          { class: "tick", "text-anchor": "middle" });
      }
    });
    el("path", { d: "M" + values.map((v, i) => `${sx(i)},${sy(v)}`).join("L"),
      class: "shape-line", fill: "none" }, layer);
    values.forEach((v, i) => {
      const handle = el("circle", { cx: sx(i), cy: sy(v), r: 7, class: "handle",
        "data-index": i, tabindex: 0 }, layer);
      const title = el("title", {}, handle);
      title.textContent = `${formatSeconds(i * options.every)}: ${v} in flight`;
    });
  }

  function valueAt(clientY) {
    const box = svg.getBoundingClientRect();
    const y = ((clientY - box.top) / box.height) * height;
    const v = ((margin.top + innerH - y) / innerH) * scaleTop;
    return Math.max(0, Math.round(v * 2) / 2);
  }

  svg.addEventListener("pointerdown", (e) => {
    const index = e.target.getAttribute && e.target.getAttribute("data-index");
    if (index === null || index === undefined) return;
    dragging = Number(index);
    svg.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  svg.addEventListener("pointermove", (e) => {
    if (dragging < 0) return;
    values[dragging] = valueAt(e.clientY);
    draw();
    if (options.onChange) options.onChange(values.slice());
  });
  const release = () => {
    if (dragging < 0) return;
    dragging = -1;
    scaleTop = niceTicks(0, top() * 1.25, 4).slice(-1)[0];
    draw();
    if (options.onCommit) options.onCommit(values.slice());
  };
  svg.addEventListener("pointerup", release);
  svg.addEventListener("pointercancel", release);
  // Keyboard: arrow keys move the focused point by one request.
  svg.addEventListener("keydown", (e) => {
    const index = e.target.getAttribute && e.target.getAttribute("data-index");
    if (index === null || index === undefined) return;
    const i = Number(index);
    if (e.key !== "ArrowUp" && e.key !== "ArrowDown") return;
    values[i] = Math.max(0, values[i] + (e.key === "ArrowUp" ? 1 : -1));
    scaleTop = niceTicks(0, top() * 1.25, 4).slice(-1)[0];
    draw();
    svg.querySelector(`[data-index="${i}"]`).focus();
    if (options.onCommit) options.onCommit(values.slice());
    e.preventDefault();
  });
  draw();
  return {
    setValues(next) {
      values = next.slice();
      scaleTop = niceTicks(0, top() * 1.25, 4).slice(-1)[0];
      draw();
    },
  };
}
