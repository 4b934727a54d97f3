// CoreFlow web UI: a little plain JavaScript, no build step. Data from the server is only
// ever put on the page with textContent / setAttribute (never an HTML-parsing setter), so a log line or a
// job name holding markup shows as text. Regions marked data-refresh are replaced by the
// same regions of a fresh copy of the page (server-rendered and escaped, parsed inert by
// DOMParser) while the tab is visible.
"use strict";

const TERMINAL_RUN = new Set(["succeeded", "failed", "cancelled", "skipped"]);
const MAX_LOG_LINES = 20000;

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (ms < 3600000) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

function text(v) {
  return v === null || v === undefined || v === "" ? "—" : String(v);
}

async function postJSON(url, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept": "application/json" },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await res.json(); } catch (_) { /* no JSON body */ }
  if (!res.ok) {
    throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  }
  return data;
}

function say(el, message, isError) {
  if (!el) return;
  el.textContent = message;
  el.classList.toggle("error", !!isError);
}

// --- Live regions --------------------------------------------------------------------

let refreshing = false;

function edited(el) {
  for (const input of el.querySelectorAll("input")) {
    if (input.type === "checkbox" ? input.checked !== input.defaultChecked : input.value !== input.defaultValue) return true;
  }
  return false;
}

function dirty(el) {
  return (el.contains(document.activeElement) && document.activeElement !== document.body) || edited(el);
}

// `force` (right after an action) replaces a region even when it holds the focus.
async function refresh(force) {
  const targets = [...document.querySelectorAll("[data-refresh][id]")];
  if (!targets.length || refreshing) return;
  refreshing = true;
  try {
    const res = await fetch(location.href, { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    for (const el of targets) {
      if (force ? edited(el) : dirty(el)) continue;
      const fresh = doc.getElementById(el.id);
      if (fresh) el.replaceWith(document.adoptNode(fresh));
    }
  } catch (_) {
    // The daemon may be restarting: try again at the next tick.
  } finally {
    refreshing = false;
  }
}

function startRefresh() {
  const periods = [...document.querySelectorAll("[data-refresh]")].map((el) => Number(el.dataset.refresh) || 5000);
  if (!periods.length) return;
  const period = Math.max(1000, Math.min(...periods));
  const tick = () => {
    if (document.visibilityState === "visible") refresh();
  };
  setInterval(tick, period);
  document.addEventListener("visibilitychange", tick);
}

// --- Buttons and forms -----------------------------------------------------------------

function messageFor(el) {
  const form = el.closest("form");
  return (form && form.querySelector(".message")) || document.getElementById("action-message");
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-post]");
  if (!button) return;
  event.preventDefault();
  const message = messageFor(button);
  button.disabled = true;
  try {
    const data = await postJSON(button.dataset.post, {});
    if (button.dataset.reload) {
      location.reload();
      return;
    }
    // A cancel says whether it was requested, done, or too late; the other actions say nothing.
    const outcome = data && data.status && data.status !== "top" ? data.status.replace(/_/g, " ") : "";
    const label = button.dataset.done || button.textContent.trim();
    say(message, outcome ? `${label}: ${outcome}.` : `${label}.`, false);
    await refresh(true);
  } catch (err) {
    say(message, err.message, true);
  } finally {
    button.disabled = false;
  }
});

async function submitPriority(form) {
  const input = form.elements.priority;
  const message = document.getElementById("action-message");
  const value = Number(input.value);
  if (input.value.trim() === "" || !Number.isInteger(value)) {
    say(message, "The priority must be a whole number.", true);
    input.focus();
    return;
  }
  try {
    await postJSON(form.dataset.post, { priority: value });
    input.defaultValue = input.value;
    say(message, `Job ${form.dataset.jobId}: priority ${value}.`, false);
    await refresh(true);
  } catch (err) {
    say(message, err.message, true);
  }
}

async function submitRun(form) {
  const message = form.querySelector(".form-message");
  const params = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") {
      params[el.name] = el.checked;
      continue;
    }
    const value = el.value.trim();
    if (value === "") {
      if (el.required) {
        say(message, `${el.name} is required.`, true);
        el.focus();
        return;
      }
      continue;
    }
    params[el.name] = value;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  say(message, "Starting…", false);
  try {
    const data = await postJSON(form.dataset.post, { params });
    if (data && data.run_id !== null && data.run_id !== undefined) {
      location.href = `/runs/${data.run_id}`;
      return;
    }
    say(message, `Waiting for a run slot (${data && data.ahead !== null ? data.ahead : "?"} ahead).`, false);
  } catch (err) {
    say(message, err.message, true);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.matches("form.run-form")) {
    event.preventDefault();
    submitRun(form);
  } else if (form.matches("form.priority-form")) {
    event.preventDefault();
    submitPriority(form);
  }
});

// --- The run page ----------------------------------------------------------------------

function runPage() {
  const root = document.getElementById("run");
  const runId = root.dataset.runId;
  const status = document.getElementById("run-status");
  const cancel = document.getElementById("cancel");
  const retry = document.getElementById("retry");
  const log = document.getElementById("log");
  const filterLabel = document.getElementById("log-filter");
  const showAll = document.getElementById("log-all");
  const rows = new Map();
  for (const tr of document.querySelectorAll("#jobs tbody tr[data-job]")) rows.set(tr.dataset.job, tr);
  const nodes = new Map();
  for (const g of document.querySelectorAll("#dag .node")) nodes.set(g.getAttribute("data-job"), g);
  let selected = null;

  function setRunStatus(s) {
    status.dataset.status = s;
    status.textContent = s;
    cancel.hidden = TERMINAL_RUN.has(s);
    retry.hidden = !(s === "failed" || s === "cancelled");
  }

  // Writes only what changed: the first `jobs` event repeats what the page already shows,
  // and leaving those cells alone keeps a 1,000-job page from laying out again.
  function setText(el, value) {
    if (el && el.textContent !== value) el.textContent = value;
  }

  function setCell(tr, cls, value) {
    setText(tr.querySelector(`.${cls}`), value);
  }

  function updateJob(job) {
    const tr = rows.get(job.name);
    if (tr) {
      const badge = tr.querySelector(".c-status .status");
      if (badge.dataset.status !== job.status) badge.dataset.status = job.status;
      setText(badge, job.status);
      setCell(tr, "c-attempts", String(job.attempts));
      setCell(tr, "c-duration", fmtMs(job.duration_ms));
      setCell(tr, "c-cpu", fmtMs(job.cpu_ms));
      setCell(tr, "c-mem", fmtBytes(job.peak_rss_bytes));
      setCell(tr, "c-exit", text(job.exit_code));
      setCell(tr, "c-reason", job.reason || "");
    }
    const node = nodes.get(job.name);
    if (node && node.getAttribute("data-state") !== job.status) {
      node.setAttribute("data-state", job.status);
      const title = node.querySelector("title");
      if (title) title.textContent = `${job.name} (${job.status})`;
    }
    if (job.status === "running" && status.dataset.status === "queued") setRunStatus("running");
  }

  function lineVisible(el) {
    return selected === null || el.dataset.job === selected;
  }

  function select(name) {
    selected = name === selected ? null : name;
    for (const [n, tr] of rows) tr.classList.toggle("selected", n === selected);
    for (const [n, g] of nodes) g.classList.toggle("selected", n === selected);
    for (const tr of document.querySelectorAll("#attempts tbody tr[data-job]")) tr.hidden = selected !== null && tr.dataset.job !== selected;
    for (const el of log.children) el.hidden = !lineVisible(el);
    filterLabel.textContent = selected === null ? "Showing every job." : `Showing job ${selected}.`;
    showAll.hidden = selected === null;
    log.scrollTop = log.scrollHeight;
  }

  function appendLines(lines) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    const fragment = document.createDocumentFragment();
    for (const l of lines) {
      const div = document.createElement("div");
      div.className = l.stream === "stderr" ? "line stderr" : "line";
      div.dataset.job = l.job;
      const src = document.createElement("span");
      src.className = "src";
      src.textContent = `${l.job}${l.attempt > 1 ? "#" + l.attempt : ""}/${l.step} `;
      const body = document.createElement("span");
      body.className = "text";
      body.textContent = l.line;
      div.append(src, body);
      div.hidden = !lineVisible(div);
      fragment.append(div);
    }
    log.append(fragment);
    while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.select-job");
    if (button) {
      select(button.closest("tr").dataset.job);
      return;
    }
    const node = event.target.closest("#dag .node");
    if (node) select(node.getAttribute("data-job"));
  });
  document.getElementById("dag").addEventListener("keydown", (event) => {
    const node = event.target.closest(".node");
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      select(node.getAttribute("data-job"));
    }
  });
  showAll.addEventListener("click", () => select(null));

  const events = new EventSource(`/api/v1/runs/${runId}/events`);
  events.addEventListener("jobs", (e) => { for (const job of JSON.parse(e.data)) updateJob(job); });
  events.addEventListener("job", (e) => updateJob(JSON.parse(e.data)));
  events.addEventListener("lines", (e) => appendLines(JSON.parse(e.data)));
  events.addEventListener("end", (e) => {
    setRunStatus(JSON.parse(e.data).status);
    log.dataset.empty = "No output.";
    events.close();
  });
  events.addEventListener("error", (e) => {
    if (e.data) {
      say(document.getElementById("action-message"), JSON.parse(e.data).error, true);
      events.close();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "run") runPage();
  startRefresh();
});
