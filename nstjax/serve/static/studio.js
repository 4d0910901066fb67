// nstjax studio: the page's behaviour (plain JavaScript, no build step).
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLOURS = { total: "#000", content: "#1f5fbf", style: "#c0392b", tv: "#2e8b3d" };
let state = null;
let options = null;

async function api(path, init = {}) {
  init.headers = Object.assign({ "X-Nstjax": "1" }, init.headers || {});
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, body: { error: "the server cannot be reached" } };
  }
  let body;
  try { body = await response.json(); } catch (e) { body = { error: `HTTP ${response.status}` }; }
  return { ok: response.ok, status: response.status, body };
}

function say(text, isError = false) {
  const m = $("#message");
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

function clearErrors() {
  document.querySelectorAll(".err").forEach((e) => { e.textContent = ""; });
  document.querySelectorAll(".field.bad").forEach((f) => f.classList.remove("bad"));
}

function showErrors(errors) {
  for (const [name, text] of Object.entries(errors || {})) {
    const slot = document.querySelector(`.err[data-for="${name}"]`);
    if (slot) {
      slot.textContent = text;
      slot.closest(".field").classList.add("bad");
    }
  }
}

function fillForm(values) {
  for (const [name, value] of Object.entries(values || {})) {
    const input = document.getElementById(name);
    if (input && input.type !== "file") input.value = value;
  }
}

function fillSelect(id, values) {
  const select = document.getElementById(id);
  select.innerHTML = "";
  for (const v of values) {
    const option = document.createElement("option");
    option.value = v;
    option.textContent = v === "" ? (id === "preset" ? "none (the defaults)" : "as the style") : v;
    select.appendChild(option);
  }
}

// A recipe fills the fields it sets (the library's defaults for the others); the rest of
// its recipe (TV kind, layer weights, schedule) goes with its name.
function choosePreset() {
  const name = $("#preset").value;
  const chosen = (options.presets || {})[name];
  const reset = {};
  for (const field of options.preset_fields || []) reset[field] = options.values[field];
  fillForm(reset);
  if (chosen) fillForm(chosen.values);
  $("#preset-summary").textContent = chosen ? chosen.summary : "";
}

async function loadOptions() {
  const r = await api("/api/options");
  if (!r.ok) { say(r.body.error, true); return; }
  options = r.body;
  fillSelect("optimizer", options.choices.optimizer);
  fillSelect("init", options.choices.init);
  fillSelect("preserve_color", options.choices.preserve_color);
  fillSelect("preset", options.choices.preset);
  $("#preset").addEventListener("change", choosePreset);
  const list = $("#style-losses");
  for (const name of options.choices.style_loss) {
    const o = document.createElement("option");
    o.value = name;
    list.appendChild(o);
  }
  fillForm(options.values);
  for (const [name, text] of Object.entries(options.placeholders || {})) {
    const input = document.getElementById(name);
    if (input) input.placeholder = text;
  }
  const mb = Math.round(options.limits.max_upload_bytes / 1048576);
  $("#folders-hint").textContent = `Uploads up to ${mb} MB. Paths may point into: ` +
    (options.limits.images.join(", ") || "(no folder)") + ".";
  if (!options.limits.can_start) {
    for (const id of ["start", "start-sweep"]) $("#" + id).disabled = true;
    say("This page watches a command-line run.");
  }
}

async function start(kind) {
  clearErrors();
  say(kind === "sweep" ? "starting the sweep…" : "starting…");
  const r = await api(kind === "sweep" ? "/api/sweep" : "/api/run",
    { method: "POST", body: new FormData($("#form")) });
  if (!r.ok) {
    showErrors(r.body.errors);
    say(r.body.error || `HTTP ${r.status}`, true);
  }
}

async function stop() {
  const r = await api("/api/stop", { method: "POST" });
  if (!r.ok) say(r.body.error, true);
}

// ---------------------------------------------------------------- drawing the state

function setStatus(s) {
  const el = $("#status");
  el.textContent = s.status + (s.kind ? ` (${s.kind})` : "");
  el.className = "status " + s.status;
  const running = s.status === "running" || s.status === "stopping";
  $("#stop").disabled = !running || !options || !options.limits.can_start;
  if (options && options.limits.can_start) {
    $("#start").disabled = running;
    $("#start-sweep").disabled = running;
  }
  const of = s.total ? ` of ${s.total}` : "";
  const members = s.kind === "sweep" ? `${s.members.length} of ${s.n_members} members done; ` : "";
  $("#progress-text").textContent = s.status === "idle" ? "" : `${members}iteration ${s.iteration}${of}`;
}

function drawLoss() {
  const canvas = $("#loss");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 44, R = 8, T = 8, B = 20;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  const points = (state && state.points) || [];
  const series = { total: [], content: [], style: [], tv: [] };
  for (const [i, total, c, s, tv] of points) {
    if (total > 0) series.total.push([i, total]);
    if (c > 0) series.content.push([i, c]);
    if (s > 0) series.style.push([i, s]);
    if (tv > 0) series.tv.push([i, tv]);
  }
  const all = Object.values(series).flat();
  ctx.strokeStyle = "#000"; ctx.strokeRect(L, T, W - L - R, H - T - B);
  if (!all.length) return;
  const xMax = Math.max(state.total || 1, ...all.map((p) => p[0]));
  let lo = Math.floor(Math.log10(Math.min(...all.map((p) => p[1]))));
  let hi = Math.ceil(Math.log10(Math.max(...all.map((p) => p[1]))));
  if (hi <= lo) hi = lo + 1;
  const px = (i, v) => [L + (i / xMax) * (W - L - R),
    H - B - ((Math.log10(v) - lo) / (hi - lo)) * (H - T - B)];
  ctx.font = "10px sans-serif"; ctx.fillStyle = "#000";
  const step = Math.max(1, Math.ceil((hi - lo) / 8));
  for (let d = lo; d <= hi; d += step) {
    const [, y] = px(0, 10 ** d);
    ctx.strokeStyle = "#e4e4e4"; ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    ctx.fillText(`1e${d}`, 4, y + 3);
  }
  ctx.fillText("0", L - 3, H - 6);
  ctx.fillText(String(xMax), W - R - 24, H - 6);
  for (const [name, pts] of Object.entries(series)) {
    if (!pts.length) continue;
    ctx.strokeStyle = COLOURS[name]; ctx.lineWidth = name === "total" ? 2 : 1;
    ctx.beginPath();
    pts.forEach(([i, v], k) => { const [x, y] = px(i, v); if (k) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    ctx.stroke();
  }
  ctx.lineWidth = 1;
}

function drawSheet() {
  const sheet = $("#sheet");
  sheet.innerHTML = "";
  if (!state || state.kind !== "sweep") return;
  const done = new Map(state.members.map((m) => [m.index, m]));
  for (let k = 0; k < state.n_members; k++) {
    const fig = document.createElement("figure");
    const m = done.get(k);
    if (m) {
      const img = document.createElement("img");
      img.src = m.src; img.alt = m.label;
      fig.appendChild(img);
    } else {
      fig.className = "pending";
      const box = document.createElement("div"); box.className = "box"; fig.appendChild(box);
    }
    const cap = document.createElement("figcaption");
    cap.textContent = m ? m.label : `member ${k} (waiting)`;
    fig.appendChild(cap);
    sheet.appendChild(fig);
  }
}

function drawDownloads(files) {
  const box = $("#downloads");
  box.innerHTML = "";
  const names = { "result.png": "result image", "result.png.json": "sidecar",
    "result_loss.png": "loss plot", "contact_sheet.png": "contact sheet", "sweep.json": "sweep report" };
  for (const [name, url] of Object.entries(files || {})) {
    const a = document.createElement("a");
    a.href = url + "?download=1"; a.download = name; a.textContent = "download " + (names[name] || name);
    a.id = "download-" + name.replace(/[^a-z]/g, "-");
    box.appendChild(a);
  }
}

function drawImage(src, iteration) {
  if (!src) return;
  $("#live-image").src = src;
  $("#live-caption").textContent = `iteration ${iteration}`;
}

function drawAll() {
  setStatus(state);
  $("#live").className = state.kind === "sweep" ? "sweep" : "";
  drawImage(state.image, state.image_iteration);
  if (!state.image) { $("#live-image").removeAttribute("src"); $("#live-caption").textContent = "no picture yet"; }
  drawLoss(); drawSheet(); drawDownloads(state.files);
  if (state.message) say(state.message, state.status === "failed");
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("state", (e) => { state = JSON.parse(e.data); drawAll(); });
  source.addEventListener("progress", (e) => {
    const d = JSON.parse(e.data);
    state.points.push(...d.points);
    state.iteration = d.points[d.points.length - 1][0];
    setStatus(state); drawLoss();
  });
  source.addEventListener("tick", (e) => { state.iteration = JSON.parse(e.data).iteration; setStatus(state); });
  source.addEventListener("image", (e) => {
    const d = JSON.parse(e.data);
    state.image = d.src; state.image_iteration = d.iteration;
    drawImage(d.src, d.iteration);
    if (d.first_picture_s != null) say(`first picture after ${d.first_picture_s.toFixed(1)} s`);
  });
  source.addEventListener("member", (e) => {
    const d = JSON.parse(e.data);
    state.members.push(d);
    drawSheet(); setStatus(state);
    say(`member ${d.index} done (${d.label})`);
  });
  source.addEventListener("status", (e) => {
    const d = JSON.parse(e.data);
    state.status = d.status;
    if (d.files) { state.files = d.files; drawDownloads(d.files); }
    setStatus(state);
    say(d.message, d.status === "failed");
    if (["done", "stopped", "failed"].includes(d.status)) loadRuns();
  });
  source.onerror = () => { if (source.readyState !== EventSource.OPEN) say("reconnecting to the server…", true); };
  source.onopen = () => { if ($("#message").textContent.startsWith("reconnecting")) say(""); };
}

// ---------------------------------------------------------------- past runs

async function loadRuns() {
  const r = await api("/api/runs");
  const list = $("#runs");
  list.innerHTML = "";
  if (!r.ok) return;
  for (const run of r.body.runs) {
    const li = document.createElement("li");
    const loss = run.final_loss != null ? `, loss ${Number(run.final_loss).toPrecision(4)}` : "";
    const text = document.createElement("span");
    text.textContent = `${run.id} (${run.status || run.kind}${loss})`;
    const button = document.createElement("button");
    button.type = "button"; button.textContent = "reopen";
    button.addEventListener("click", () => reopen(run.id));
    li.append(text, button);
    list.appendChild(li);
  }
}

async function reopen(id) {
  const r = await api(`/api/runs/${encodeURIComponent(id)}`);
  if (!r.ok) { say(r.body.error, true); return; }
  clearErrors();
  fillForm(r.body.form);
  const files = r.body.files;
  $("#live").className = "";
  if (files["result.png"]) drawImage(files["result.png"], r.body.record.iterations);
  else if (files["contact_sheet.png"]) drawImage(files["contact_sheet.png"], "(sweep)");
  drawDownloads(files);
  say(`reopened ${id}: its settings are in the form`);
}

async function sidecarChosen() {
  const file = $("#sidecar").files[0];
  if (!file) return;
  clearErrors();
  const body = new FormData();
  body.append("sidecar", file);
  const r = await api("/api/sidecar", { method: "POST", body });
  if (!r.ok) { showErrors(r.body.errors); say(r.body.error, true); return; }
  fillForm(r.body.form);
  say(`settings of ${file.name} are in the form`);
}

window.addEventListener("DOMContentLoaded", async () => {
  $("#start").addEventListener("click", () => start("run"));
  $("#start-sweep").addEventListener("click", () => start("sweep"));
  $("#stop").addEventListener("click", stop);
  $("#sidecar").addEventListener("change", sidecarChosen);
  await loadOptions();
  listen();
  loadRuns();
});
