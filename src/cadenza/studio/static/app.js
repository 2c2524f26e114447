// cadenza studio: the page over the JSON API (no framework, nothing from outside; drawing in roll.js).
"use strict";
const $ = (id) => document.getElementById(id);
// prompt: {id, name, isPiece} or null; uploading: the name of the file on its way, which holds Generate
const state = { model: null, prompt: null, uploading: null, uploadSeq: 0, job: null, training: null };

// this launch's token, handed to the page inside index.html: the studio refuses a change without it
const TOKEN = (document.querySelector('meta[name="cadenza-token"]') || {}).content || "";

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), "X-Cadenza-Token": TOKEN } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.field = body && body.field;  // the request field it is about: shown beside that field
    throw error;
  }
  return body;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function postJSON(path, data) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

// -- errors: beside the field or in the section they are about ---------------------------------
// API field -> [the element it is set with, its name on the page]
const FIELDS = {
  num: ["num", "Candidates"], bars: ["bars", "Bars"], temperature: ["temperature", "Temperature"],
  top_p: ["top-p", "Top-p"], min_p: ["min-p", "Min-p"], form: ["form", "Form"], seed: ["seed", "Seed"],
  key: ["key", "Key"], tempo: ["tempo", "Tempo"], density: ["density", "Density"],
  prompt_bars: ["prompt-bars", "Prompt bars"], prompt: ["prompt-file", "Prompt"], model: ["models", "Model"],
  melody: ["melody-file", "Melody"], melody_track: ["melody-track", "Melody track"],
  first: [null, "First bar"], last: [null, "Last bar"],  // on each piece's card: found by their data-field
  name: ["train-name", "Name"], source: ["train-source", "Folder"], preset: ["train-preset", "Preset"],
  minutes: ["train-minutes", "Budget"], from: ["train-from", "Fine-tune from"],
};

// The API's words for a person: the field's name on the page, no "primer"
function userWords(message, field) {
  if (FIELDS[field] && message.startsWith(`${field} `)) message = FIELDS[field][1] + message.slice(field.length);
  return message.replace(/\bprimer\b/g, "prompt");
}

function showBanner(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

// a section by its id, or an element holding its own .section-error (a piece's card)
const place = (where) => (typeof where === "string" ? $(where) : where);

function clearErrors(...places) {
  for (const where of places) {
    const section = place(where);
    section.querySelectorAll(".field-error").forEach((e) => e.remove());
    section.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    const box = section.querySelector(".section-error");
    box.textContent = ""; box.hidden = true;
  }
}

function fail(where, error) {
  const text = userWords(error.message, error.field), section = place(where);
  const target = (error.field && section.querySelector(`[data-field="${error.field}"]`)) ||
    (FIELDS[error.field] && FIELDS[error.field][0] && $(FIELDS[error.field][0]));
  if (target) {
    const note = document.createElement("span");
    note.className = "field-error"; note.setAttribute("role", "alert"); note.textContent = text;
    (target.closest("label") || target).after(note);
    target.setAttribute("aria-invalid", "true");
    return;
  }
  const box = section.querySelector(".section-error");
  box.textContent = text; box.hidden = false;
}

// -- models -----------------------------------------------------------------------------------
async function loadModels() {
  const list = await api("/api/models"), box = $("models"), from = $("train-from");
  const chosenFrom = from.value || localStorage.getItem("cadenza.trainFrom") || "";
  box.innerHTML = "";
  from.querySelectorAll("option[value]:not([value=''])").forEach((o) => o.remove());
  if (!list.length) box.innerHTML = '<p class="muted">no trained models under --runs yet: train one below</p>';
  for (const m of list) {
    box.appendChild(modelCard(m));
    const option = document.createElement("option"); option.value = m.id; option.textContent = m.id; from.appendChild(option);
  }
  if ([...from.options].some((o) => o.value === chosenFrom)) from.value = chosenFrom;  // a refresh keeps the choice
  fromChanged();
  const keep = list.find((m) => state.model && m.id === state.model.id) || list.find((m) => !m.error);
  if (keep) selectModel(keep);
}

function modelCard(m) {
  const card = document.createElement("div");
  card.className = "model"; card.dataset.id = m.id;
  const loss = m.best_val_loss == null ? "–" : m.best_val_loss.toFixed(3);
  card.innerHTML = `<label><input type="radio" name="model" value="${m.id}"> <span class="name"></span></label>
    <div class="facts"></div><canvas width="220" height="70"></canvas>`;
  card.querySelector(".name").textContent = m.id;
  card.title = `trained on ${m.corpus}`;
  card.querySelector(".facts").textContent = m.error ? m.error :
    `corpus ${String(m.corpus).split("/").filter(Boolean).pop()} · ${(m.parameters / 1e6).toFixed(2)} M parameters · ${m.model} · best val loss ${loss}`;
  if (!m.error) drawCurve(card.querySelector("canvas"), m.curve);
  card.addEventListener("click", () => selectModel(m));
  return card;
}

function selectModel(m) {
  if (!state.model || state.model.id !== m.id) {  // the model's own sampling defaults
    if (m.defaults) {
      $("temperature").value = m.defaults.temperature; $("top-p").value = m.defaults.top_p;
      $("min-p").value = m.defaults.min_p; $("form").value = m.defaults.form;
    }
  }
  state.model = m;
  document.querySelectorAll(".model").forEach((c) => {
    c.classList.toggle("selected", c.dataset.id === m.id);
    c.querySelector("input").checked = c.dataset.id === m.id;
  });
}

// -- prompt -------------------------------------------------------------------------------------
async function uploadPrompt(file) {
  const seq = ++state.uploadSeq;  // a later choice wins over an upload still on its way
  clearErrors("prompt-section");
  state.uploading = file.name;
  setPrompt(null, `uploading ${file.name}…`);
  const form = new FormData(); form.append("file", file);
  try {
    const piece = await api("/api/prompts", { method: "POST", body: form });
    if (seq !== state.uploadSeq) return;
    setPrompt({ id: piece.id, name: file.name, isPiece: false }, `${file.name}: ${piece.num_bars} bars, ${piece.notes.length} notes`);
  } catch (e) {
    if (seq !== state.uploadSeq) return;
    $("prompt-file").value = ""; setPrompt(null); fail("prompt-section", e);
  } finally {
    if (seq === state.uploadSeq) { state.uploading = null; updateGenerate(); }
  }
}

function setPrompt(prompt, text) {
  state.prompt = prompt;
  $("prompt-status").textContent = text || "none: the model starts from its own material";
  $("prompt-bars").disabled = Boolean(prompt && prompt.isPiece);
  updateGenerate();
}

function clearPrompt() {
  state.uploadSeq++; state.uploading = null;
  $("prompt-file").value = "";
  setPrompt(null);
}

function promptFromPiece(piece) {
  if (piece) setPrompt({ id: piece.id, name: "the kept piece", isPiece: true }, `the kept piece (${piece.num_bars} bars): the next round continues it`);
  else setPrompt(null);
}

// -- jobs: generate, accompany, regenerate bars; one at a time, followed by one status line ------------
const num = (id) => ($(id).value === "" ? null : Number($(id).value));

// what every job takes: the model, how many candidates and how they are drawn
function sampling() {
  return { model: state.model && state.model.id, num: num("num"), temperature: num("temperature"), top_p: num("top-p"),
           min_p: num("min-p"), seed: num("seed"), wait: false };
}

function options() {
  const prompt = state.prompt;  // read once: the request names exactly the prompt shown now
  const body = { ...sampling(), bars: num("bars"), form: $("form").value.trim(), key: $("key").value.trim() || null,
                 tempo: num("tempo"), density: $("density").value || null, prompt: prompt && prompt.id };
  if (prompt && !prompt.isPiece && num("prompt-bars")) body.prompt_bars = num("prompt-bars");
  return body;
}

function updateGenerate() {
  document.querySelectorAll("button.job").forEach((b) => { b.disabled = Boolean(state.job); });
  $("generate").disabled = Boolean(state.uploading || state.job);
  $("generate").title = state.uploading ? `waiting for ${state.uploading} to upload` : "";
}

// ``send()`` starts a job (its request's errors are shown in ``where``), then the page follows it
async function startJob(where, send) {
  if (state.job) return;
  clearErrors("models-section", "options-section", where);
  if (!state.model) { fail("models-section", new Error("pick a model first")); return; }
  $("gen-status").textContent = "starting…";
  state.job = "starting"; updateGenerate();
  try {
    const job = await send();
    state.job = job.id;
    busy(true);
    pollJob(job.id, where);
  } catch (e) {
    state.job = null; updateGenerate();
    $("gen-status").textContent = "not started";
    fail(where, e);
  }
}

function startGeneration() {
  if (state.uploading) return;
  clearErrors("prompt-section");
  startJob("options-section", () => postJSON("/api/generate", options()));
}

function startAccompany() {
  const file = $("melody-file").files[0];
  startJob("accompany-section", () => {
    if (!file) throw Object.assign(new Error("choose the melody's MIDI file first"), { field: "melody" });
    const form = new FormData();
    const fields = { ...sampling(), melody_track: $("melody-track").value.trim() };
    for (const [name, value] of Object.entries(fields)) if (value !== null && value !== "") form.append(name, String(value));
    form.append("file", file);
    return api("/api/accompany", { method: "POST", body: form });
  });
}

function startInfill(card, piece) {
  const bar = (cls) => { const v = card.querySelector(`input.${cls}`).value; return v === "" ? null : Number(v); };
  startJob(card, () => postJSON("/api/infill", { ...sampling(), piece: piece.id, first: bar("first"), last: bar("last") }));
}

function busy(on) {
  if (!on) state.job = null;
  updateGenerate(); $("cancel").hidden = !on; $("progress").hidden = !on;
  if (on) { $("progress").removeAttribute("value"); $("gen-status").textContent = "waiting…"; }
}

async function pollJob(id, where) {
  let job;
  try { job = await api(`/api/jobs/${id}`); } catch (e) { busy(false); fail(where, e); return; }
  if (job.state === "queued" || job.state === "running") {
    if (job.total > 0) { $("progress").max = job.total; $("progress").value = job.done; }
    $("gen-status").textContent = job.state === "queued" ? "queued…" :
      job.done >= job.total && job.total > 0 ? "rendering audio…" : `generating: ${Math.floor(job.done)} / ${job.total} bars`;
    setTimeout(() => pollJob(id, where), 250);
    return;
  }
  busy(false);
  if (job.state !== "done") {
    $("gen-status").textContent = job.state;
    if (job.state === "failed") fail(where, { message: job.error });
    return;
  }
  const made = job.result.candidates.length, from = job.result.prompt.name;
  $("gen-status").textContent = `${plural(made, "candidate")}, ` + (job.result.about || (from ? `continuing ${from}` : "no prompt"));
  showCandidates(job.result.candidates);
  $("candidates").querySelector(".candidate").focus();
  loadRounds();
}
