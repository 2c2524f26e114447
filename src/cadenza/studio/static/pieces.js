// cadenza studio: candidates, the kept piece (with undo) and the history of rounds, all kept by
// the studio (GET /api/history) so that a reload or a restart shows them again.
"use strict";

function pieceCard(piece, cls, title) {
  const card = document.createElement("div");
  card.className = cls; card.dataset.id = piece.id; card.tabIndex = -1;
  card.innerHTML = `<h3></h3><div class="rollwrap"><canvas class="roll"></canvas></div><div class="row">
    <audio controls preload="auto"></audio><a class="midi">MIDI</a></div>
    <div class="row regen"><label>bars <input type="number" class="first" data-field="first" min="1" aria-label="first bar to regenerate">
    to <input type="number" class="last" data-field="last" min="1" aria-label="last bar to regenerate"></label>
    <button type="button" class="job regen-bars">Regenerate bars</button></div>
    <p class="section-error" role="alert" hidden></p>`;
  const prompt = piece.prompt_end > 0 ? ` · continues ${piece.prompt_name || "a prompt"} (shaded)` : "";
  const made = piece.made ? ` · ${piece.made}` : "";
  card.querySelector("h3").textContent =
    `${title} · ${piece.num_bars} bars · ${piece.seconds.toFixed(1)} s · ${piece.notes.length} notes${prompt}${made}`;
  card.setAttribute("aria-label", card.querySelector("h3").textContent);
  card.querySelector("audio").src = piece.wav_url;
  const midi = card.querySelector("a.midi");
  midi.href = piece.midi_url; midi.download = piece.midi_name || "";
  const regen = card.querySelector("button.regen-bars");
  regen.disabled = Boolean(state.job);
  regen.addEventListener("click", () => startInfill(card, piece));
  return card;
}

function drawCard(card, piece) {
  const canvas = card.querySelector("canvas");
  drawRoll(canvas, piece);
  followAudio(card.querySelector("audio"), canvas, piece);
  selectBars(card, piece);
}

function showCandidates(candidates) {
  const box = $("candidates");
  box.innerHTML = "";
  if (!candidates.length) { box.innerHTML = '<p class="muted">generate to see candidates here; keep one to continue from it</p>'; return; }
  candidates.forEach((piece, k) => {
    const card = pieceCard(piece, "candidate", `candidate ${k + 1}`);
    const keep = document.createElement("button");
    keep.className = "keep"; keep.type = "button"; keep.textContent = "Keep and continue from it";
    keep.addEventListener("click", () => keepPiece(piece));
    card.querySelector(".row").appendChild(keep);
    box.appendChild(card);
    drawCard(card, piece);
  });
  markKept();
}

async function keepPiece(piece) {
  clearErrors("piece-section");
  try {
    const answer = await postJSON("/api/keep", { piece: piece.id });
    showPiece(answer.piece, answer.kept.length);
    promptFromPiece(answer.piece);
  } catch (e) { fail("piece-section", e); }
}

async function undoKeep() {
  clearErrors("piece-section");
  try {
    const answer = await postJSON("/api/keep/undo", {});
    showPiece(answer.piece, answer.kept.length);
    promptFromPiece(answer.piece);
  } catch (e) { fail("piece-section", e); }
}

function showPiece(piece, keeps) {
  const box = $("piece");
  box.innerHTML = "";
  box.dataset.id = piece ? piece.id : "";
  $("undo-keep").hidden = !keeps;
  $("undo-keep").textContent = keeps > 1 ? "Undo Keep (back to the piece kept before)" : "Undo Keep";
  if (!piece) { box.innerHTML = '<p class="muted">nothing kept yet</p>'; markKept(); return; }
  const whole = pieceCard(piece, "piece", "the piece so far");
  const wav = document.createElement("a");
  wav.className = "wav"; wav.href = piece.wav_url; wav.download = piece.wav_name || ""; wav.textContent = "WAV";
  whole.querySelector(".row").appendChild(wav);
  box.appendChild(whole);
  drawCard(whole, { ...piece, prompt_end: 0 });
  markKept();
}

function markKept() {
  const kept = $("piece").dataset.id;
  document.querySelectorAll(".candidate").forEach((c) => c.classList.toggle("kept", Boolean(kept) && c.dataset.id === kept));
}

// -- history ------------------------------------------------------------------------------------
async function loadHistory() {
  const history = await api("/api/history");
  showCandidates(history.candidates);
  showPiece(history.piece, history.kept.length);
  if (history.piece && !state.prompt && !state.uploading) promptFromPiece(history.piece);
  showRounds(history.rounds);
}

async function loadRounds() {
  try { showRounds((await api("/api/history")).rounds); } catch (e) { fail("history-section", e); }
}

function showRounds(rounds) {
  const list = $("rounds");
  list.innerHTML = "";
  if (!rounds.length) { list.innerHTML = '<li class="muted">nothing generated yet</li>'; return; }
  rounds.slice(-30).reverse().forEach((round) => {
    const item = document.createElement("li"), show = document.createElement("button");
    item.textContent = `${round.time.replace("T", " ").slice(0, 16)} · ${round.model} · ${plural(round.candidates.length, "candidate")} · ` +
      (round.made || (round.prompt_name ? `continuing ${round.prompt_name}` : "no prompt")) + " ";
    show.type = "button"; show.textContent = "show";
    show.addEventListener("click", () => showRound(round));
    item.appendChild(show);
    list.appendChild(item);
  });
}

async function showRound(round) {
  clearErrors("history-section");
  try {
    const pieces = await Promise.all(round.candidates.map((id) => api(`/api/pieces/${id}.json`)));
    showCandidates(pieces);
    $("candidates").querySelector(".candidate").focus();
  } catch (e) { fail("history-section", e); }
}
