// The chainscale console: chains, environments and chainlets with their live decisions,
// the Configure panel (Baseten's PATCH through the REST gateway) and the simulator
// (POST /v1/simulations, run on the control plane with the agents' decision code).
// Every value from the server reaches the page through textContent, never as HTML.

import { formatSeconds, pointsEditor, scatter, timeSeries } from "/console/chart.js";

const KEY_STORAGE = "chainscale.api_key";
const POLL_MS = 2000;
const HISTORY_SECONDS = 600;

// ---------------------------------------------------------------------------------------
// DOM helpers

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) {
      node.addEventListener(k.slice(2), v);
    } else if (k === "dataset") {
      Object.assign(node.dataset, v);
    } else {
      node.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function format(n, digits) {
  if (typeof n !== "number" || !isFinite(n)) return "-";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits ?? 1 });
}

// ---------------------------------------------------------------------------------------
// API: the key is entered once and kept in this tab's session storage.

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.violations = error.field_violations || [];
  }
}

let keyPrompt = null;

function askForKey(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  error.hidden = !reason;
  error.textContent = reason || "";
  input.value = "";
  keyPrompt = new Promise((resolve) => {
    const form = document.getElementById("key-form");
    const submit = (e) => {
      e.preventDefault();
      if (!input.value.trim()) return;
      sessionStorage.setItem(KEY_STORAGE, input.value.trim());
      form.removeEventListener("submit", submit);
      dialog.close();
      keyPrompt = null;
      renderKeyStatus();
      resolve();
    };
    form.addEventListener("submit", submit);
  });
  dialog.showModal();
  input.focus();
  return keyPrompt;
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Api-Key ${key}` } : {};
}

// Asks the control plane whether it wants a key, and for one when none is kept yet. A
// kept key that is refused is asked for again by the call that was refused.
async function ensureAuthenticated() {
  const res = await fetch("/v1/console/session");
  const session = await res.json();
  document.body.dataset.auth = session.auth;
  if (session.auth === "api_key" && !sessionStorage.getItem(KEY_STORAGE)) await askForKey("");
}

async function api(method, path, body, signal) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (res.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    await askForKey(`That key was not accepted (${(data && data.error && data.error.message) ||
      "401"}); try another.`);
    return api(method, path, body, signal);
  }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || {});
  return data;
}

function renderKeyStatus() {
  const status = document.getElementById("key-status");
  status.replaceChildren();
  if (sessionStorage.getItem(KEY_STORAGE)) {
    status.append("key set ", h("button", { class: "link", id: "forget-key", onclick: () => {
      sessionStorage.removeItem(KEY_STORAGE);
      renderKeyStatus();
      route();
    } }, "forget"));
  } else if (document.body.dataset.auth === "none") {
    status.append("no key needed (--insecure)");
  }
}

// ---------------------------------------------------------------------------------------
// Settings: the documented fields and ranges (DESIGN §3).

const SETTINGS = [
  { name: "min_replica", label: "Min replicas", min: 0, max: 1000, slider: 20,
    help: "0 or more, at most max_replica; 0 allows scale to zero" },
  { name: "max_replica", label: "Max replicas", min: 1, max: 1000, slider: 50,
    help: "1 to 1000 (the control plane's --max_replica_limit)" },
  { name: "autoscaling_window", label: "Autoscaling window", min: 10, max: 3600, unit: "s",
    help: "10 to 3600 seconds of load averaged per decision" },
  { name: "scale_down_delay", label: "Scale-down delay", min: 0, max: 3600, unit: "s",
    help: "0 to 3600 seconds below the count before a step down" },
  { name: "concurrency_target", label: "Concurrency target", min: 1, max: 100000, slider: 128,
    help: "1 or more requests per replica" },
  { name: "target_utilization_percentage", label: "Target utilization", min: 1, max: 100,
    unit: "%", help: "1 to 100 percent of the concurrency target" },
  { name: "max_scale_down_rate", label: "Max scale-down rate", min: 1, max: 50, unit: "%",
    help: "1 to 50 percent of running replicas per step" },
  { name: "target_in_flight_tokens", label: "Target in-flight tokens", min: 1, max: 1e9,
    slider: 100000, optional: true,
    help: "unset, or 1 or more tokens per replica (token-based scaling)" },
];

const FIXED_IN_DEVELOPMENT = ["min_replica", "max_replica"];

// ---------------------------------------------------------------------------------------
// Router

const view = () => document.getElementById("view");
let current = null;  // the mounted view: {unmount()}

function route() {
  if (current && current.unmount) current.unmount();
  current = null;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  document.getElementById("nav-chains").classList.toggle("active", parts[0] !== "simulator");
  document.getElementById("nav-simulator").classList.toggle("active", parts[0] === "simulator");
  view().replaceChildren();
  if (parts[0] === "simulator") {
    current = mountSimulator(parts[1]);
  } else if (parts[0] === "chains" && parts[1] && parts[2]) {
    current = mountEnvironment(parts[1], parts[2], parts[3]);
  } else if (parts[0] === "chains" && parts[1]) {
    current = mountChain(parts[1]);
  } else {
    current = mountChains();
  }
}

function showError(container, error) {
  container.append(h("p", { class: "error", role: "alert" },
    error instanceof ApiError ? `${error.code || error.status}: ${error.message}`
      : String(error.message || error)));
}

// ---------------------------------------------------------------------------------------
// Chains

const chainPath = (chainId) => `/v1/chains/${encodeURIComponent(chainId)}`;
const envPath = (chainId, envName) =>
  `${chainPath(chainId)}/environments/${encodeURIComponent(envName)}`;
const envHash = (chainId, envName) =>
  `#/chains/${encodeURIComponent(chainId)}/${encodeURIComponent(envName)}`;

// The chains, each with its environments (read for the first ENV_LOOKUPS chains; the
// others link to their chain).
const ENV_LOOKUPS = 25;

function mountChains() {
  const root = h("section", { id: "chains-view" },
    h("h1", {}, "Chains"),
    h("p", { class: "lede" }, "Every chain this control plane stores, with its environments. ",
      "Open an environment to see its chainlets' settings and live decisions."));
  const table = h("table", { class: "list", id: "chains-table" },
    h("thead", {}, h("tr", {}, ["Chain", "Name", "Created", "Environments"]
      .map((t) => h("th", {}, t)))));
  const body = h("tbody");
  table.append(body);
  root.append(table);
  view().append(root);
  api("GET", "/v1/chains").then((answer) => {
    const chains = answer.chains || [];
    if (!chains.length) {
      body.append(h("tr", {}, h("td", { colspan: 4, class: "empty" },
        "No chains yet: create one with CreateChain (grpcurl, the CLI or a client).")));
    }
    chains.forEach((chain, i) => {
      const envs = h("td", {}, h("a", { href: `#/chains/${encodeURIComponent(chain.id)}` }, "open"));
      body.append(h("tr", { dataset: { chain: chain.id } },
        h("td", {}, h("code", {}, chain.id)),
        h("td", {}, chain.name),
        h("td", {}, chain.created_at ? new Date(chain.created_at).toLocaleString() : ""),
        envs));
      if (i >= ENV_LOOKUPS) return;
      api("GET", `${chainPath(chain.id)}/environments`).then((list) => {
        envs.replaceChildren(...(list.environments || []).map((env) =>
          h("a", { class: "env-link", href: envHash(chain.id, env.name) }, env.name)));
      }).catch((e) => showError(envs, e));
    });
  }).catch((e) => showError(root, e));
  return {};
}

// A chain without an environment named: its production environment, or its first.
function mountChain(chainId) {
  const root = h("section", { id: "chain-view" }, h("h1", {}, h("a", { href: "#/chains" }, "Chains"),
    " / ", h("code", {}, chainId)));
  view().append(root);
  api("GET", `${chainPath(chainId)}/environments`).then((list) => {
    const names = (list.environments || []).map((env) => env.name);
    const name = names.includes("production") ? "production" : names[0];
    if (name) location.replace(envHash(chainId, name));
  }).catch((e) => showError(root, e));
  return {};
}

// ---------------------------------------------------------------------------------------
// One environment: chainlets, live decisions, chart, Configure panel

function pendingText(decision, settings) {
  if (!decision || !decision.scale_down_pending_since) return "";
  const since = Date.parse(decision.scale_down_pending_since);
  const due = since + (settings.scale_down_delay || 0) * 1000;
  const left = Math.max(0, Math.round((due - Date.now()) / 1000));
  return decision.warming_up && left === 0 ? "held: warming up"
    : `since ${new Date(since).toLocaleTimeString()}, step in ${formatSeconds(left)}`;
}

function statusBadge(status) {
  if (!status) return "";
  return h("span", { class: `badge ${status.toLowerCase()}` }, status);
}

function mountEnvironment(chainId, envName, selectedName) {
  const root = h("section", { id: "environment-view" });
  const heading = h("h1", {}, h("a", { href: "#/chains" }, "Chains"), " / ",
    h("code", {}, chainId));
  const tabs = h("nav", { class: "tabs", id: "env-tabs" });
  const table = h("table", { class: "list", id: "chainlets-table" },
    h("thead", {}, h("tr", {}, ["Chainlet", "Replicas", "Status", "Why", "Window avg",
      "Capped", "Scale-down pending", "Revision", ""].map((t) => h("th", {}, t)))));
  const body = h("tbody");
  table.append(body);
  // The chainlet's facts and chart, redrawn at every poll, and the Configure panel, left
  // alone by polls so typing keeps its focus.
  const info = h("div", { id: "chainlet-info" });
  const configureSlot = h("div", { id: "configure-slot" });
  const detail = h("section", { id: "chainlet-detail", class: "detail" }, info, configureSlot);
  const errors = h("div");
  root.append(heading, tabs, errors, table, detail);
  view().append(root);

  const samples = new Map();  // chainlet name -> [{t, load, capacity, replicas}]
  let environment = null;
  let selected = selectedName || "";
  let timer = null;

  api("GET", `${chainPath(chainId)}/environments`).then((list) => {
    for (const env of list.environments || []) {
      tabs.append(h("a", { href: envHash(chainId, env.name),
        class: env.name === envName ? "active" : "" }, env.name));
    }
  }).catch((e) => showError(errors, e));

  // The capacity `replicas` give at the target utilization.
  function capacity(replicas, s) {
    return replicas * (s.concurrency_target || 1) * (s.target_utilization_percentage || 70) / 100;
  }

  function record(env) {
    const now = Date.now() / 1000;
    for (const c of env.chainlet_settings || []) {
      const d = c.decision;
      const s = c.autoscaling_settings || {};
      const list = samples.get(c.chainlet_name) || [];
      list.push({
        t: now,
        replicas: d ? d.desired_replicas || 0 : 0,
        load: d ? d.avg_in_flight_requests || 0 : 0,
        capacity: capacity(d ? d.desired_replicas || 0 : 0, s),
      });
      while (list.length && list[0].t < now - HISTORY_SECONDS) list.shift();
      samples.set(c.chainlet_name, list);
    }
  }

  // The control plane's history of the chainlet's stored decisions (its last minutes),
  // put before the points polled since the page opened: once per chainlet.
  const historyAsked = new Set();
  async function loadHistory(name) {
    if (!name || historyAsked.has(name)) return;
    historyAsked.add(name);
    let history;
    try {
      history = await api("GET", `/v1/console/chains/${encodeURIComponent(chainId)}/environments/` +
        `${encodeURIComponent(envName)}/history?chainlet=${encodeURIComponent(name)}`);
    } catch (e) {
      historyAsked.delete(name);  // asked again at the next poll
      return;
    }
    const c = ((environment && environment.chainlet_settings) || []).find((x) => x.chainlet_name === name);
    const s = (c && c.autoscaling_settings) || {};
    const live = samples.get(name) || [];
    const firstLive = live.length ? live[0].t : Date.now() / 1000;
    const cutoff = firstLive - HISTORY_SECONDS;
    const past = [];
    for (const p of history.points || []) {
      const t = Date.parse(p.time) / 1000;
      if (!(t < firstLive)) continue;
      const point = { t: Math.max(t, cutoff), replicas: p.desired_replicas || 0,
        load: p.avg_in_flight_requests || 0, capacity: capacity(p.desired_replicas || 0, s) };
      // A decision from before the window holds until the next one: drawn from its start.
      if (past.length && past[past.length - 1].t === cutoff && point.t === cutoff) past.pop();
      past.push(point);
    }
    samples.set(name, past.concat(live));
    if (name === selected && environment) renderDetail();
  }

  function renderTable() {
    body.replaceChildren();
    for (const c of environment.chainlet_settings || []) {
      const d = c.decision;
      const row = h("tr", {
        class: c.chainlet_name === selected ? "selected" : "",
        dataset: { chainlet: c.chainlet_name },
        onclick: () => select(c.chainlet_name),
      },
      h("td", {}, h("strong", {}, c.chainlet_name)),
      h("td", { class: "num", dataset: { field: "replicas" } }, d ? String(d.desired_replicas || 0) : "-"),
      h("td", {}, statusBadge(d && d.status)),
      h("td", { class: "reason" }, d ? d.reason || "" : "no decision stored yet"),
      h("td", { class: "num" }, d ? format(d.avg_in_flight_requests || 0, 2) : "-"),
      h("td", {}, d && d.capped ? h("span", { class: "badge capped" }, "capped") : ""),
      h("td", {}, pendingText(d, c.autoscaling_settings || {})),
      h("td", { class: "num" }, String(c.revision || "")),
      h("td", {}, h("button", {
        class: "secondary configure",
        onclick: (e) => {
          e.stopPropagation();
          select(c.chainlet_name);
          openConfigure(c.chainlet_name);
        },
      }, "Configure")));
      body.append(row);
    }
  }

  function renderDetail() {
    info.replaceChildren();
    const c = (environment.chainlet_settings || []).find((x) => x.chainlet_name === selected);
    if (!c) {
      info.append(h("p", { class: "hint" }, "Select a chainlet to see its chart."));
      return;
    }
    const d = c.decision;
    const s = c.autoscaling_settings || {};
    const points = samples.get(c.chainlet_name) || [];
    const t0 = points.length ? points[0].t : Date.now() / 1000;
    // data-since: the time of the chart's first point (seconds since the epoch).
    const chart = h("div", { class: "chart-box", id: "live-chart",
      dataset: { since: String(t0), points: String(points.length) } });
    info.append(
      h("h2", {}, c.chainlet_name, " ", statusBadge(d && d.status)),
      h("dl", { class: "facts" },
        h("dt", {}, "Desired replicas"), h("dd", {}, d ? String(d.desired_replicas || 0) : "-"),
        h("dt", {}, "Previous"), h("dd", {}, d ? String(d.previous_replicas || 0) : "-"),
        h("dt", {}, "Why"), h("dd", {}, d ? d.reason || "" : "no decision stored yet"),
        h("dt", {}, "Capped"), h("dd", {}, d && d.capped ? "yes: the load asks for more than max_replica; requests queue" : "no"),
        h("dt", {}, "Scale-down pending"), h("dd", {}, pendingText(d, s) || "no"),
        h("dt", {}, "Decided"), h("dd", {}, d && d.decided_at
          ? `${new Date(d.decided_at).toLocaleTimeString()} by ${d.agent_id || "an agent"}` : "-"),
        h("dt", {}, "Settings"), h("dd", {}, SETTINGS.filter((f) => s[f.name] != null)
          .map((f) => `${f.name} ${s[f.name]}`).join(", "))),
      chart,
      h("p", { class: "hint" }, "The last minutes of stored decisions (agents store a decision ",
        "when it changes), then polled every 2 s: the window average and replicas, ",
        "and the capacity those replicas give at the target utilization."));
    timeSeries(chart, {
      label: `load, capacity and replicas of ${c.chainlet_name}`,
      times: points.map((p) => p.t - t0),
      xFormat: (sec) => new Date((t0 + sec) * 1000).toLocaleTimeString(),
      leftLabel: "in-flight requests",
      rightLabel: "replicas",
      series: [
        { key: "load", name: "window average", color: "#2563eb", values: points.map((p) => p.load), step: true, fill: true },
        { key: "capacity", name: "capacity", color: "#16a34a", values: points.map((p) => p.capacity), step: true, dash: "6 4" },
        { key: "replicas", name: "replicas", color: "#ea580c", axis: "right", values: points.map((p) => p.replicas), step: true },
      ],
    });
  }

  function select(name) {
    if (name !== selected) configureSlot.replaceChildren();
    selected = name;
    window.history.replaceState(null, "", `#/chains/${encodeURIComponent(chainId)}/` +
      `${encodeURIComponent(envName)}/${encodeURIComponent(name)}`);
    renderTable();
    renderDetail();
    loadHistory(name);
  }

  // Opens the panel on what is stored now: the environment is read again first.
  async function openConfigure(name) {
    await poll();
    const c = (environment.chainlet_settings || []).find((x) => x.chainlet_name === name);
    if (!c) return;
    const panel = configurePanel(chainId, envName, c, environment.revision, async () => {
      await poll();
      return environment;
    });
    configureSlot.replaceChildren(panel);
    panel.querySelector("input:not([disabled])").focus();
  }

  async function poll() {
    try {
      environment = await api("GET", envPath(chainId, envName));
      errors.replaceChildren();
      record(environment);
      if (!selected && (environment.chainlet_settings || []).length) {
        selected = environment.chainlet_settings[0].chainlet_name;
      }
      renderTable();
      renderDetail();
      loadHistory(selected);
      root.dataset.loaded = "true";
    } catch (e) {
      errors.replaceChildren();
      showError(errors, e);
    }
  }
  poll();
  timer = setInterval(poll, POLL_MS);
  return { unmount: () => clearInterval(timer) };
}

// The Configure panel: every field with its documented range, sent as Baseten's PATCH.
// It sends the fields changed since it showed them, conditional on the environment's
// revision then (a change by someone else in between is refused, not overwritten);
// `refresh` reads the environment again after a stored update.
function configurePanel(chainId, envName, chainlet, revision, refresh) {
  let stored = Object.assign({}, chainlet.autoscaling_settings || {});
  let baseRevision = revision;
  const development = envName === "development";
  const inputs = {};
  const errors = {};
  const form = h("form", { class: "configure-panel", id: "configure-panel", novalidate: true });
  form.append(h("h3", {}, `Configure ${chainlet.chainlet_name} in ${envName}`));
  const grid = h("div", { class: "fields" });
  for (const f of SETTINGS) {
    const fixed = development && FIXED_IN_DEVELOPMENT.includes(f.name);
    const input = h("input", {
      type: "number", id: `field-${f.name}`, name: f.name, min: f.min, max: f.max, step: 1,
      value: stored[f.name] == null ? "" : String(stored[f.name]),
      placeholder: f.optional ? "unset" : "", disabled: fixed, "aria-describedby": `help-${f.name}`,
    });
    inputs[f.name] = input;
    errors[f.name] = h("p", { class: "field-error", id: `error-${f.name}`, role: "alert", hidden: true });
    grid.append(h("div", { class: "field" },
      h("label", { for: `field-${f.name}` }, f.label, h("code", {}, f.name)),
      h("div", { class: "input-row" }, input, f.unit ? h("span", { class: "unit" }, f.unit) : ""),
      h("p", { class: "help", id: `help-${f.name}` },
        fixed ? "fixed in development environments" : f.help),
      errors[f.name]));
  }
  form.append(grid);
  const result = h("div", { class: "result", id: "configure-result", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", id: "configure-update" }, "Update");
  form.append(h("div", { class: "buttons" }, submit), result);

  function clearErrors() {
    for (const p of Object.values(errors)) {
      p.hidden = true;
      p.textContent = "";
    }
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
    result.replaceChildren();
  }
  function fieldError(name, message) {
    const p = errors[name];
    if (!p) return false;
    p.textContent = message;
    p.hidden = false;
    inputs[name].setAttribute("aria-invalid", "true");
    return true;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors();
    // Only the fields the user changed are sent (a partial update, as Baseten's PATCH
    // takes it); with none changed, all of them, so the control plane says UNCHANGED.
    const changed = {};
    const all = {};
    const reset = [];
    let bad = false;
    for (const f of SETTINGS) {
      const raw = inputs[f.name].value.trim();
      if (inputs[f.name].disabled) continue;
      if (raw === "") {
        if (f.optional) {
          if (stored[f.name] != null) reset.push(f.name);
          continue;
        }
        bad = fieldError(f.name, "enter a whole number") || bad;
        continue;
      }
      const value = Number(raw);
      if (!Number.isInteger(value)) {
        bad = fieldError(f.name, `"${raw}" is not a whole number`) || bad;
        continue;
      }
      all[f.name] = value;
      if (value !== stored[f.name]) changed[f.name] = value;
    }
    if (bad) return;
    const update = { chainlet_name: chainlet.chainlet_name,
      autoscaling_settings: Object.keys(changed).length || reset.length ? changed : all };
    if (reset.length) update.reset_fields = reset;
    submit.disabled = true;
    try {
      const answer = await api("PATCH", `${envPath(chainId, envName)}/chainlet_settings/autoscaling_settings`,
        { updates: [update], expected_revision: baseRevision });
      result.append(statusBadge(answer.status), " ", h("span", { id: "configure-message" }, answer.message || ""));
      result.dataset.status = answer.status;
      // What is stored now is what the next update starts from.
      const env = await refresh();
      const fresh = env && (env.chainlet_settings || []).find((c) => c.chainlet_name === chainlet.chainlet_name);
      if (fresh) {
        stored = Object.assign({}, fresh.autoscaling_settings || {});
        baseRevision = env.revision;
      }
    } catch (error) {
      result.dataset.status = error.status === 409 ? "CONFLICT" : "ERROR";
      if (error.status === 409) {
        result.append(h("p", { class: "error", role: "alert" }, "The environment changed since ",
          "this panel showed its settings, so nothing was stored: click Configure again to ",
          `start from the current settings (${error.message}).`));
        return;
      }
      const unplaced = [];
      for (const v of error.violations || []) {
        const name = String(v.field || "").split(".").pop();
        if (!fieldError(name, v.description)) unplaced.push(`${v.field}: ${v.description}`);
      }
      if (!(error.violations || []).length || unplaced.length) {
        result.append(h("p", { class: "error", role: "alert" },
          `${error.code || error.status}: ${unplaced.length ? unplaced.join("; ") : error.message}`));
      } else {
        result.append(h("span", { class: "badge error" }, "REJECTED"),
          " nothing was stored: fix the fields marked above");
      }
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// ---------------------------------------------------------------------------------------
// Simulator

const TRACE_SCENARIO = {
  name: "trace", title: "Trace replay",
  description: "The bundled sample of a real LLM conversation trace (Azure, 2023), each " +
    "request in flight for a service time of 50 ms + 0.2 ms per context token + 20 ms per " +
    "generated token, then idle for the tail. Upload another trace in the same CSV form " +
    "(TIMESTAMP,ContextTokens,GeneratedTokens).",
  request: { autoscaling_settings: { max_replica: 10, concurrency_target: 4 },
    tail_seconds: 1800, startup_seconds: 0 },
};

const SIM_CONTROLS = [
  ...SETTINGS.map((f) => Object.assign({}, f, { setting: true })),
  { name: "startup_seconds", label: "Replica start-up", min: 0, max: 3600, slider: 600, unit: "s",
    help: "seconds before a new replica serves; it costs from the start" },
];

function mountSimulator(initial) {
  const root = h("section", { id: "simulator-view" });
  const scenarios = h("div", { class: "scenarios", id: "scenarios", role: "tablist" });
  const description = h("p", { class: "lede", id: "scenario-description" });
  const loadRow = h("div", { class: "load-row" });
  const controls = h("div", { class: "controls", id: "sim-controls" });
  const chart = h("div", { class: "chart-box", id: "sim-chart" });
  const editorBox = h("div", { class: "chart-box", id: "sim-editor", hidden: true });
  const meters = h("div", { class: "meters", id: "meters" });
  const events = h("ol", { class: "events", id: "sim-events" });
  const status = h("p", { class: "hint", id: "sim-status", "aria-live": "polite" });
  const sweepBox = h("section", { class: "sweep", id: "sweep" });
  root.append(
    h("h1", {}, "Simulator"),
    h("p", { class: "intro" }, "The decision loop the agents run, replayed one simulated second ",
      "at a time on the control plane (POST /v1/simulations). Start from a scenario or shape ",
      "the traffic in the sandbox; every parameter is live, and the meters track what the ",
      "settings cost in idle capacity and queued requests."),
    scenarios, description,
    h("div", { class: "sim-grid" },
      h("div", {}, loadRow, controls),
      h("div", {}, chart, editorBox, status, meters,
        h("details", { class: "events-box" }, h("summary", {}, "Scale events"), events))),
    sweepBox);
  view().append(root);

  const state = { scenario: null, request: null, traceCsv: null, traceName: "" };
  const fields = {};
  let timer = null;
  let inFlight = null;
  let editor = null;

  // Controls: a slider and a number box per parameter, both live.
  for (const c of SIM_CONTROLS) {
    const sliderMax = c.slider || c.max;
    const number = h("input", { type: "number", id: `sim-${c.name}`, min: c.min, max: c.max, step: 1,
      placeholder: c.optional ? "unset" : "" });
    const slider = h("input", { type: "range", id: `sim-${c.name}-slider`, min: c.min,
      max: sliderMax, step: 1, "aria-label": c.label });
    const error = h("p", { class: "field-error", hidden: true, id: `sim-error-${c.name}` });
    number.addEventListener("input", () => {
      if (number.value !== "") slider.value = number.value;
      schedule();
    });
    slider.addEventListener("input", () => {
      number.value = slider.value;
      schedule();
    });
    fields[c.name] = { number, slider, error, control: c };
    controls.append(h("div", { class: "field" },
      h("label", { for: `sim-${c.name}` }, c.label, h("code", {}, c.name)),
      h("div", { class: "input-row" }, slider, number, c.unit ? h("span", { class: "unit" }, c.unit) : ""),
      error));
  }

  const patternInput = h("input", { type: "text", id: "sim-pattern", spellcheck: "false",
    "aria-label": "load shape" });
  patternInput.addEventListener("input", schedule);
  const duration = h("input", { type: "number", id: "sim-duration", min: 1, max: 10080, step: 1 });
  duration.addEventListener("input", schedule);
  const tail = h("input", { type: "number", id: "sim-tail", min: 0, max: 10080, step: 1 });
  tail.addEventListener("input", schedule);
  const upload = h("input", { type: "file", id: "sim-upload", accept: ".csv,text/csv" });
  upload.addEventListener("change", async () => {
    const file = upload.files[0];
    if (!file) return;
    state.traceCsv = await file.text();
    state.traceName = file.name;
    renderLoadRow();
    schedule();
  });

  function renderLoadRow() {
    loadRow.replaceChildren();
    if (state.scenario.name === "trace") {
      loadRow.append(
        h("div", { class: "field" }, h("label", {}, "Trace"),
          h("p", { id: "trace-name" }, state.traceName || "loading the sample trace ..."),
          h("label", { for: "sim-upload", class: "upload" }, "Replay another trace: ", upload)),
        h("div", { class: "field" }, h("label", { for: "sim-tail" }, "Idle tail after the trace"),
          h("div", { class: "input-row" }, tail, h("span", { class: "unit" }, "min"))));
    } else {
      loadRow.append(
        h("div", { class: "field" }, h("label", { for: "sim-pattern" }, "Load shape"), patternInput,
          h("p", { class: "help" }, "step:FROM,TO,AT  spike:BASE,PEAK,AT,FOR  pulse:LOW,HIGH,LOW_FOR,HIGH_FOR  ",
            "wave:LOW,HIGH,PERIOD  ramp:FROM,TO,OVER  points:EVERY,V1,V2,...  constant:N")),
        h("div", { class: "field" }, h("label", { for: "sim-duration" }, "Duration"),
          h("div", { class: "input-row" }, duration, h("span", { class: "unit" }, "min"))));
    }
  }

  function setControls(request) {
    const s = request.autoscaling_settings || {};
    for (const c of SIM_CONTROLS) {
      const defaults = { min_replica: 0, max_replica: 1, autoscaling_window: 60,
        scale_down_delay: 900, concurrency_target: 1, target_utilization_percentage: 70,
        max_scale_down_rate: 50 };
      const value = c.setting ? (s[c.name] !== undefined ? s[c.name] : defaults[c.name])
        : request[c.name] || 0;
      fields[c.name].number.value = value === undefined ? "" : String(value);
      fields[c.name].slider.value = value === undefined ? String(c.min) : String(Math.min(value, c.slider || c.max));
    }
    patternInput.value = request.pattern || "";
    duration.value = String(Math.round((request.duration_seconds || 3600) / 60));
    tail.value = String(Math.round((request.tail_seconds ?? 1800) / 60));
  }

  function buildRequest() {
    const request = { autoscaling_settings: {}, max_points: 1200, max_events: 200 };
    for (const c of SIM_CONTROLS) {
      const raw = fields[c.name].number.value.trim();
      if (raw === "" && c.optional) continue;
      const target = c.setting ? request.autoscaling_settings : request;
      target[c.name] = Number(raw);
    }
    if (state.scenario.name === "trace") {
      request.trace_csv = state.traceCsv || "";
      request.tail_seconds = Math.round(Number(tail.value) * 60);
    } else {
      request.pattern = patternInput.value.trim();
      request.duration_seconds = Math.round(Number(duration.value) * 60);
    }
    return request;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(run, 150);
  }

  async function run() {
    if (state.scenario.name === "trace" && !state.traceCsv) return;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const request = buildRequest();
    state.request = request;
    status.textContent = "simulating ...";
    root.dataset.state = "running";
    for (const f of Object.values(fields)) f.error.hidden = true;
    try {
      const result = await api("POST", "/v1/simulations", request, controller.signal);
      if (controller !== inFlight) return;
      renderResult(result);
      status.textContent = `${formatSeconds(result.meters.seconds)} simulated, one decision per second` +
        (result.series.step_seconds > 1 ? `; chart points summarise ${result.series.step_seconds} s each` : "");
      root.dataset.state = "done";
    } catch (error) {
      if (error.name === "AbortError") return;
      root.dataset.state = "error";
      status.replaceChildren();
      const unplaced = [];
      for (const v of error.violations || []) {
        const name = String(v.field || "").split(".").pop();
        const f = fields[name];
        if (f) {
          f.error.textContent = v.description;
          f.error.hidden = false;
        } else {
          unplaced.push(`${v.field}: ${v.description}`);
        }
      }
      status.append(h("span", { class: "error", role: "alert" },
        unplaced.length ? unplaced.join("; ") : (error.violations || []).length
          ? "fix the marked parameters" : error.message));
    }
  }

  function renderResult(result) {
    const series = result.series;
    const step = series.step_seconds || 1;
    const times = series.load.map((_, i) => i * step);
    const s = result.autoscaling_settings;
    timeSeries(chart, {
      label: "simulated load, capacity and replicas",
      times,
      leftLabel: "in-flight requests",
      rightLabel: "replicas",
      series: [
        { key: "load", name: "load", color: "#2563eb", values: series.load, fill: true },
        { key: "average", name: "window average", color: "#7c3aed", values: series.window_average, dash: "3 3", width: 1.5 },
        { key: "capacity", name: "capacity (serving x concurrency)", color: "#16a34a",
          values: series.serving_replicas.map((r) => r * s.concurrency_target), step: true, dash: "6 4" },
        { key: "replicas", name: "replicas", color: "#ea580c", axis: "right", values: series.replicas, step: true },
      ],
      markers: (result.events || []).map((e) => ({ t: e.second, color: e.to_replicas > e.from_replicas ? "#ea580c" : "#64748b",
        label: `${formatSeconds(e.second)} ${e.from_replicas} to ${e.to_replicas}: ${e.reason}` })),
    });
    const m = result.meters;
    const pct = (part, whole) => (whole > 0 ? `${format((100 * part) / whole, 1)}%` : "-");
    const cells = [
      ["replica_seconds", "Replica-seconds", format(m.replica_seconds, 0), `${format(m.replica_seconds / 3600, 2)} replica-hours`],
      ["idle_replica_seconds", "Idle replica-seconds", format(m.idle_replica_seconds, 1), `${pct(m.idle_replica_seconds, m.replica_seconds)} of what is paid`],
      ["queued_request_seconds", "Queued request-seconds", format(m.queued_request_seconds, 1), `${pct(m.queued_request_seconds, m.request_seconds)} of ${format(m.request_seconds, 0)} offered`],
      ["cold_starts", "Cold starts", String(m.cold_starts), "times the count left zero"],
      ["scale_events", "Scale events", String(m.scale_events), `${m.scale_ups} up, ${m.scale_downs} down`],
      ["capped_seconds", "Seconds capped", String(m.capped_seconds), "load above max_replica"],
      ["peak_replicas", "Peak replicas", String(m.peak_replicas), ""],
    ];
    meters.replaceChildren(...cells.map(([key, label, value, note]) =>
      h("div", { class: "meter", dataset: { meter: key, value: String(m[key]) } },
        h("span", { class: "meter-label" }, label),
        h("span", { class: "meter-value" }, value),
        h("span", { class: "meter-note" }, note))));
    events.replaceChildren(...(result.events || []).map((e) =>
      h("li", {}, h("code", {}, formatSeconds(e.second)), ` ${e.from_replicas} to ${e.to_replicas}`,
        e.cold_start ? " (cold start)" : "", `: ${e.reason}`)));
    if (result.events_omitted) events.append(h("li", {}, `... and ${result.events_omitted} more`));
  }

  function pointsOf(pattern) {
    const m = /^points:([^,]+),(.*)$/.exec(pattern || "");
    if (!m) return null;
    const every = { s: 1, m: 60, h: 3600 }[m[1].slice(-1)] * Number(m[1].slice(0, -1));
    return { everyText: m[1], every, values: m[2].split(",").map(Number) };
  }

  function choose(scenario) {
    state.scenario = scenario;
    for (const chip of scenarios.children) {
      chip.classList.toggle("active", chip.dataset.scenario === scenario.name);
      chip.setAttribute("aria-selected", String(chip.dataset.scenario === scenario.name));
    }
    description.textContent = scenario.description;
    setControls(scenario.request);
    renderLoadRow();
    const points = pointsOf(scenario.request.pattern);
    editorBox.hidden = !points;
    if (points) {
      const toPattern = (values) => `points:${points.everyText},${values.join(",")}`;
      editor = pointsEditor(editorBox, {
        values: points.values, every: points.every,
        onChange: (values) => { patternInput.value = toPattern(values); },
        onCommit: (values) => { patternInput.value = toPattern(values); schedule(); },
      });
    }
    if (scenario.name === "trace" && !state.traceCsv) {
      fetch("/console/sample_trace.csv").then((r) => r.text()).then((csv) => {
        state.traceCsv = csv;
        state.traceName = "sample_trace.csv (bundled)";
        renderLoadRow();
        run();
      });
    } else {
      run();
    }
    if (location.hash !== `#/simulator/${scenario.name}`) {
      window.history.replaceState(null, "", `#/simulator/${scenario.name}`);
    }
    renderSweep();
  }

  // The sweep: every combination of one or two settings' values, on the current load.
  function renderSweep() {
    sweepBox.replaceChildren();
    const options = SETTINGS.filter((f) => !f.optional).map((f) => h("option", { value: f.name }, f.name));
    const field1 = h("select", { id: "sweep-field-1" }, options.map((o) => o.cloneNode(true)));
    field1.value = "scale_down_delay";
    const values1 = h("input", { type: "text", id: "sweep-values-1", value: "0,60,300,900,1800" });
    const field2 = h("select", { id: "sweep-field-2" }, h("option", { value: "" }, "(none)"),
      options.map((o) => o.cloneNode(true)));
    field2.value = "min_replica";
    const values2 = h("input", { type: "text", id: "sweep-values-2", value: "0,1,2" });
    const plot = h("div", { class: "chart-box", id: "sweep-chart" });
    const table = h("table", { class: "list", id: "sweep-table" });
    const note = h("p", { class: "hint", id: "sweep-status" });
    const button = h("button", { class: "primary", id: "sweep-run", type: "button" }, "Run sweep");
    sweepBox.append(
      h("h2", {}, "Sweep: cost against queueing"),
      h("p", { class: "hint" }, "Every combination runs on the load above; the frontier joins the ",
        "settings no other combination beats on both replica-seconds and queued request-seconds."),
      h("div", { class: "sweep-form" },
        h("label", {}, "Vary ", field1, " over ", values1),
        h("label", {}, "and ", field2, " over ", values2), button),
      note, h("div", { class: "sweep-grid" }, plot, table));
    button.addEventListener("click", async () => {
      const request = buildRequest();
      request.max_points = 0;
      request.max_events = 0;
      const parse = (text) => text.split(",").map((v) => v.trim()).filter((v) => v !== "").map(Number);
      request.sweep = [{ field: field1.value, values: parse(values1.value) }];
      if (field2.value) request.sweep.push({ field: field2.value, values: parse(values2.value) });
      note.textContent = "sweeping ...";
      button.disabled = true;
      try {
        const result = await api("POST", "/v1/simulations", request);
        const names = request.sweep.map((a) => a.field);
        const label = (p) => names.map((n) => `${n} ${p.autoscaling_settings[n]}`).join(", ");
        scatter(plot, {
          xLabel: "replica-hours (cost)", yLabel: "queued request-seconds",
          points: result.sweep.map((p) => ({ x: p.meters.replica_seconds / 3600,
            y: p.meters.queued_request_seconds, frontier: p.on_frontier, label: label(p) })),
        });
        table.replaceChildren(
          h("thead", {}, h("tr", {}, [...names, "replica-hours", "idle replica-s", "queued request-s",
            "cold starts", "scale events", ""].map((t) => h("th", {}, t)))),
          h("tbody", {}, result.sweep.map((p) => h("tr", { class: p.on_frontier ? "frontier" : "" },
            names.map((n) => h("td", { class: "num" }, String(p.autoscaling_settings[n]))),
            h("td", { class: "num" }, format(p.meters.replica_seconds / 3600, 2)),
            h("td", { class: "num" }, format(p.meters.idle_replica_seconds, 0)),
            h("td", { class: "num" }, format(p.meters.queued_request_seconds, 1)),
            h("td", { class: "num" }, String(p.meters.cold_starts)),
            h("td", { class: "num" }, String(p.meters.scale_events)),
            h("td", {}, p.on_frontier ? "frontier" : "")))));
        note.textContent = `${result.sweep.length} combinations simulated.`;
      } catch (error) {
        note.replaceChildren(h("span", { class: "error", role: "alert" },
          (error.violations || []).length
            ? error.violations.map((v) => `${v.field}: ${v.description}`).join("; ") : error.message));
      } finally {
        button.disabled = false;
      }
    });
  }

  api("GET", "/v1/simulations/scenarios").then((answer) => {
    const all = [...(answer.scenarios || []), TRACE_SCENARIO];
    for (const s of all) {
      scenarios.append(h("button", { type: "button", class: "chip", role: "tab",
        dataset: { scenario: s.name }, onclick: () => choose(s) }, s.title));
    }
    choose(all.find((s) => s.name === initial) || all[0]);
  }).catch((e) => showError(root, e));

  return { unmount: () => { clearTimeout(timer); if (inFlight) inFlight.abort(); } };
}

// ---------------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
ensureAuthenticated().then(() => {
  renderKeyStatus();
  route();
});
