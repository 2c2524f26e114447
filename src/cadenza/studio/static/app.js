// cadenza studio: the page over the JSON API (no framework, nothing from outside).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { model: null, prompt: null, promptIsPiece: false, job: null, training: null };

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// this launch's token, handed to the page inside index.html: the studio refuses a change without it
const TOKEN = (document.querySelector('meta[name="cadenza-token"]') || {}).content || "";

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), "X-Cadenza-Token": TOKEN } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

function postJSON(path, data) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

// -- drawing --------------------------------------------------------------------------------
function drawCurve(canvas, curve) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const points = curve.flatMap((r) => [r[1], r[2]]).filter((v) => v !== null);
  if (!curve.length || !points.length) { ctx.fillStyle = "#999"; ctx.fillText("no loss curve yet", 8, h / 2); return; }
  const x0 = curve[0][0], x1 = Math.max(curve[curve.length - 1][0], x0 + 1e-9);
  const lo = Math.min(...points), hi = Math.max(...points, lo + 1e-9);
  const x = (v) => 4 + ((v - x0) / (x1 - x0)) * (w - 8), y = (v) => h - 12 - ((v - lo) / (hi - lo)) * (h - 24);
  [[1, "#9aa5b8", "train"], [2, "#2f5bd3", "validation"]].forEach(([k, color, name], i) => {
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    const shown = curve.filter((r) => r[k] !== null);
    shown.forEach((r, j) => (j ? ctx.lineTo : ctx.moveTo).call(ctx, x(r[0]), y(r[k])));
    ctx.stroke(); ctx.fillStyle = color; ctx.fillText(name, w - 70, 12 + 12 * i);
    shown.forEach((r) => ctx.fillRect(x(r[0]) - 2, y(r[k]) - 2, 4, 4));
  });
  ctx.fillStyle = "#666"; ctx.fillText(hi.toFixed(2), 4, 10); ctx.fillText(lo.toFixed(2), 4, h - 2);
}

function drawRoll(canvas, piece, newFrom = 0) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth || 800, h = canvas.clientHeight || 180;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio); ctx.clearRect(0, 0, w, h);
  const notes = piece.notes, end = Math.max(1, ...notes.map((n) => n[0] + n[1]), ...piece.bars);
  if (!notes.length) { ctx.fillStyle = "#999"; ctx.fillText("no notes", 10, h / 2); return; }
  let lo = Math.min(...notes.map((n) => n[2])) - 2, hi = Math.max(...notes.map((n) => n[2])) + 2;
  if (hi - lo < 24) { const mid = (hi + lo) / 2; lo = mid - 12; hi = mid + 12; }
  const x = (t) => (t / end) * w, rowH = h / (hi - lo + 1), y = (p) => h - (p - lo + 1) * rowH;
  ctx.strokeStyle = "#e3e6eb"; ctx.lineWidth = 1;
  for (const b of piece.bars) { ctx.beginPath(); ctx.moveTo(x(b) + 0.5, 0); ctx.lineTo(x(b) + 0.5, h); ctx.stroke(); }
  for (const [t, d, p, v] of notes) {
    const shade = 0.35 + 0.65 * (v / 127);
    ctx.fillStyle = t < newFrom ? `rgba(120,130,150,${shade})` : `rgba(47,91,211,${shade})`;
    ctx.fillRect(x(t), y(p), Math.max(1.5, x(t + d) - x(t) - 0.5), Math.max(1.5, rowH - 0.5));
  }
}

// -- models -----------------------------------------------------------------------------------
async function loadModels() {
  const list = await api("/api/models"), box = $("models"), from = $("train-from");
  box.innerHTML = "";
  from.querySelectorAll("option[value]:not([value=''])").forEach((o) => o.remove());
  if (!list.length) box.innerHTML = '<p class="muted">no trained models under --runs yet: train one below</p>';
  for (const m of list) {
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
    box.appendChild(card);
    const option = document.createElement("option"); option.value = m.id; option.textContent = m.id; from.appendChild(option);
  }
  const keep = list.find((m) => state.model && m.id === state.model.id) || list.find((m) => !m.error);
  if (keep) selectModel(keep);
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
async function uploadPrompt() {
  const file = $("prompt-file").files[0];
  if (!file) return;
  const form = new FormData(); form.append("file", file);
  try {
    const piece = await api("/api/prompts", { method: "POST", body: form });
    setPrompt(piece.id, false, `${file.name}: ${piece.num_bars} bars, ${piece.notes.length} notes`);
    showError("");
  } catch (e) { $("prompt-file").value = ""; showError(e.message); }
}

function setPrompt(id, isPiece, text) {
  state.prompt = id; state.promptIsPiece = isPiece;
  $("prompt-status").textContent = text;
  $("prompt-bars").disabled = isPiece;
}

// -- generation -----------------------------------------------------------------------------------
function options() {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  const body = { model: state.model && state.model.id, num: num("num"), bars: num("bars"), temperature: num("temperature"),
                 top_p: num("top-p"), min_p: num("min-p"), form: $("form").value.trim(), seed: num("seed"),
                 prompt: state.prompt, wait: false };
  if (state.prompt && !state.promptIsPiece && num("prompt-bars")) body.prompt_bars = num("prompt-bars");
  return body;
}

async function startGeneration() {
  if (!state.model) { showError("pick a model first"); return; }
  showError("");
  $("gen-status").textContent = "starting…";
  try {
    const job = await postJSON("/api/generate", options());
    state.job = job.id;
    busy(true);
    pollJob(job.id);
  } catch (e) { showError(e.message); }
}

function busy(on) {
  $("generate").disabled = on; $("cancel").hidden = !on; $("progress").hidden = !on;
  if (on) { $("progress").removeAttribute("value"); $("gen-status").textContent = "waiting…"; }
}

async function pollJob(id) {
  let job;
  try { job = await api(`/api/jobs/${id}`); } catch (e) { busy(false); showError(e.message); return; }
  if (job.state === "queued" || job.state === "running") {
    if (job.total > 0) { $("progress").max = job.total; $("progress").value = job.done; }
    $("gen-status").textContent = job.state === "queued" ? "queued…" :
      job.done >= job.total && job.total > 0 ? "rendering audio…" : `generating: ${Math.floor(job.done)} / ${job.total} bars`;
    setTimeout(() => pollJob(id), 250);
    return;
  }
  busy(false);
  $("gen-status").textContent = job.state === "done" ? `${job.result.candidates.length} candidates` : job.state;
  if (job.state === "failed") showError(job.error);
  if (job.state === "done") showCandidates(job.result.candidates);
}

function pieceCard(piece, cls, title) {
  const card = document.createElement("div");
  card.className = cls; card.dataset.id = piece.id;
  card.innerHTML = `<h3></h3><canvas class="roll"></canvas><div class="row">
    <audio controls preload="auto" src="${piece.wav_url}"></audio>
    <a class="midi" href="${piece.midi_url}" download>MIDI</a></div>`;
  card.querySelector("h3").textContent = `${title} · ${piece.num_bars} bars · ${piece.seconds.toFixed(1)} s · ${piece.notes.length} notes`;
  return card;
}

function showCandidates(candidates) {
  const box = $("candidates"), promptEnd = state.promptEnd || 0;
  box.innerHTML = "";
  candidates.forEach((piece, k) => {
    const card = pieceCard(piece, "candidate", `candidate ${k + 1}`);
    const keep = document.createElement("button");
    keep.className = "keep"; keep.type = "button"; keep.textContent = "Keep and continue from it";
    keep.addEventListener("click", () => keepPiece(piece, card));
    card.querySelector(".row").appendChild(keep);
    box.appendChild(card);
    drawRoll(card.querySelector("canvas"), piece, promptEnd);
  });
}

function keepPiece(piece, card) {
  document.querySelectorAll(".candidate").forEach((c) => c.classList.toggle("kept", c === card));
  const box = $("piece");
  box.innerHTML = "";
  const whole = pieceCard(piece, "piece", "the piece so far");
  const wav = document.createElement("a");
  wav.className = "wav"; wav.href = piece.wav_url; wav.download = ""; wav.textContent = "WAV";
  whole.querySelector(".row").appendChild(wav);
  box.appendChild(whole);
  drawRoll(whole.querySelector("canvas"), piece);
  state.promptEnd = Math.max(0, ...piece.notes.map((n) => n[0] + n[1]));
  setPrompt(piece.id, true, `the kept piece (${piece.num_bars} bars): the next round continues it`);
}

// -- training -----------------------------------------------------------------------------------
async function startTraining() {
  showError("");
  try {
    let source = $("train-source").value.trim();
    const files = $("train-files").files;
    if (files.length) {
      const form = new FormData();
      for (const f of files) form.append("files", f);
      source = (await api("/api/corpora", { method: "POST", body: form })).corpus;
    }
    const body = { name: $("train-name").value.trim(), source: source || "bach", preset: $("train-preset").value,
                   minutes: Number($("train-minutes").value) };
    if ($("train-from").value) body.from = $("train-from").value;
    const training = await postJSON("/api/train", body);
    state.training = training.id;
    pollTraining();
  } catch (e) { showError(e.message); }
}

async function pollTraining() {
  let t;
  try { t = await api(`/api/train/${state.training}`); } catch (e) { showError(e.message); return; }
  const running = t.state === "running";
  $("train-start").disabled = running; $("train-stop").hidden = !running;
  $("train-status").textContent = `${t.model}: ${t.state}, ${Math.round(t.elapsed_s)} s`;
  $("train-log").hidden = false; $("train-log").textContent = t.log.join("\n");
  $("train-curve").hidden = false; drawCurve($("train-curve"), t.curve);
  if (t.error) showError(t.error);
  if (running) setTimeout(pollTraining, 1000); else loadModels().catch((e) => showError(e.message));
}

// -- wiring -------------------------------------------------------------------------------------
$("prompt-file").addEventListener("change", uploadPrompt);
$("prompt-clear").addEventListener("click", () => { $("prompt-file").value = ""; state.promptEnd = 0; setPrompt(null, false, "none: the model starts from its own material"); });
$("generate").addEventListener("click", startGeneration);
$("cancel").addEventListener("click", () => state.job && postJSON(`/api/jobs/${state.job}/cancel`, {}).catch((e) => showError(e.message)));
$("train-start").addEventListener("click", startTraining);
$("train-stop").addEventListener("click", () => postJSON(`/api/train/${state.training}/stop`, {}).catch((e) => showError(e.message)));
loadModels().catch((e) => showError(e.message));
