// cadenza studio: drawing. Loss curves, and piano rolls with pitch labels (every C), bar
// numbers, the prompt's bars shaded up to a marked line, and a playhead that follows the audio.
"use strict";

const NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const pitchName = (p) => NOTE_NAMES[p % 12] + (Math.floor(p / 12) - 1);  // 60 -> C4, as MIDI and most DAWs
const GUTTER = 30, TOP = 14;  // room for the pitch labels on the left and the bar numbers on top
const PROMPT_LINE = "#d97706", SPAN_SHADE = "#e4f4ea";  // where a prompt ends; bars regenerated

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

// The pitch range shown: the notes' with a margin, at least two octaves.
function pitchRange(notes) {
  let lo = Math.min(...notes.map((n) => n[2])) - 2, hi = Math.max(...notes.map((n) => n[2])) + 2;
  if (hi - lo < 24) { const mid = Math.round((hi + lo) / 2); lo = mid - 12; hi = mid + 12; }
  return [lo, hi];
}

function drawRoll(canvas, piece) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth || 800, h = canvas.clientHeight || 180;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio); ctx.clearRect(0, 0, w, h); ctx.font = "10px system-ui, sans-serif";
  const notes = piece.notes, end = Math.max(1, piece.end || 0, ...notes.map((n) => n[0] + n[1]), ...piece.bars);
  const x = (t) => GUTTER + (t / end) * (w - GUTTER);
  canvas.rollX = x; canvas.rollEnd = end;
  if (!notes.length) { ctx.fillStyle = "#999"; ctx.fillText("no notes", GUTTER + 10, h / 2); return; }
  const [lo, hi] = pitchRange(notes), rowH = (h - TOP) / (hi - lo + 1), y = (p) => h - (p - lo + 1) * rowH;
  const promptEnd = piece.prompt_end || 0;
  if (promptEnd > 0) { ctx.fillStyle = "#eceff4"; ctx.fillRect(GUTTER, TOP, x(promptEnd) - GUTTER, h - TOP); }
  if (piece.span) { ctx.fillStyle = SPAN_SHADE; ctx.fillRect(x(piece.span[0]), TOP, x(piece.span[1]) - x(piece.span[0]), h - TOP); }
  ctx.lineWidth = 1; ctx.fillStyle = "#6b7280";
  for (let p = Math.ceil(lo / 12) * 12; p <= hi; p += 12) {  // a line under every C, and its name
    ctx.strokeStyle = "#cfd5de"; ctx.beginPath(); ctx.moveTo(GUTTER, y(p) + rowH + 0.5); ctx.lineTo(w, y(p) + rowH + 0.5); ctx.stroke();
    ctx.fillText(pitchName(p), 2, y(p) + rowH);
  }
  let lastLabel = -Infinity;
  piece.bars.slice(0, -1).forEach((b, i) => {  // the last bar line is the end of the last bar
    ctx.strokeStyle = "#e3e6eb"; ctx.beginPath(); ctx.moveTo(x(b) + 0.5, TOP); ctx.lineTo(x(b) + 0.5, h); ctx.stroke();
    if (x(b) - lastLabel >= 18) { ctx.fillText(String(i + 1), x(b) + 2, 10); lastLabel = x(b); }
  });
  for (const [t, d, p, v] of notes) {
    const shade = 0.35 + 0.65 * (v / 127);
    ctx.fillStyle = t < promptEnd ? `rgba(120,130,150,${shade})` : `rgba(47,91,211,${shade})`;
    ctx.fillRect(x(t), y(p), Math.max(1.5, x(t + d) - x(t) - 0.5), Math.max(1.5, rowH - 0.5));
  }
  const promptBars = piece.bars.filter((b) => b < promptEnd).length;
  if (promptEnd > 0) {  // drawn last: notes never hide where the prompt ends
    ctx.fillStyle = PROMPT_LINE; ctx.fillRect(x(promptEnd) - 1, TOP, 2, h - TOP);
    ctx.fillText("prompt ends", Math.max(GUTTER, x(promptEnd) - 62), TOP + 10);
    canvas.dataset.promptX = String(x(promptEnd));
  }
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `piano roll: ${piece.num_bars} bars, ${pitchName(lo)} to ${pitchName(hi)}` +
    (promptEnd > 0 ? `; the prompt is bars 1 to ${promptBars}, shaded, then the new music` : "") +
    (piece.span ? `; ${piece.made}, shaded` : ""));
}

// The bars to regenerate: typed into the card's two fields or dragged across its roll, and
// shown over the roll.
function selectBars(card, piece) {
  const canvas = card.querySelector("canvas"), first = card.querySelector("input.first"), last = card.querySelector("input.last");
  const count = Math.max(1, piece.bars.length - 1), shade = document.createElement("div");
  first.max = count; last.max = count;
  shade.className = "selection"; shade.hidden = true;
  canvas.parentElement.appendChild(shade);
  const show = () => {
    const a = Number(first.value), b = Number(last.value);
    shade.hidden = !(canvas.rollX && a >= 1 && b >= a && b <= count);
    if (shade.hidden) return;
    const left = canvas.rollX(piece.bars[a - 1]);
    shade.style.left = `${left}px`; shade.style.width = `${canvas.rollX(piece.bars[b]) - left}px`;
  };
  const barAt = (event) => {  // the bar under the pointer, counted from 1
    let bar = 1;
    while (bar < count && canvas.rollX(piece.bars[bar]) <= event.offsetX) bar++;
    return bar;
  };
  let anchor = null;
  const pick = (event) => {
    const bar = barAt(event);
    first.value = Math.min(anchor, bar); last.value = Math.max(anchor, bar);
    show();
  };
  canvas.addEventListener("pointerdown", (e) => {
    if (!canvas.rollX) return;
    anchor = barAt(e); canvas.setPointerCapture(e.pointerId); pick(e);
  });
  canvas.addEventListener("pointermove", (e) => { if (anchor !== null) pick(e); });
  ["pointerup", "pointercancel"].forEach((kind) => canvas.addEventListener(kind, () => { anchor = null; }));
  first.addEventListener("input", show); last.addEventListener("input", show);
}

// The tick sounding ``seconds`` into the piece, through its tempo map.
function tickAt(piece, seconds) {
  const tempos = piece.tempos && piece.tempos.length ? piece.tempos : [[0, 120]];
  let elapsed = 0;
  for (let i = 0; i < tempos.length; i++) {
    const [start, qpm] = tempos[i], next = i + 1 < tempos.length ? tempos[i + 1][0] : Infinity;
    const perTick = 60 / (qpm * piece.tpq), span = (next - start) * perTick;
    if (seconds <= elapsed + span) return start + (seconds - elapsed) / perTick;
    elapsed += span;
  }
  return 0;
}

// A line over the roll at the audio's position: moved every frame while it plays, and on a seek.
function followAudio(audio, canvas, piece) {
  const head = document.createElement("div");
  head.className = "playhead"; head.hidden = true;
  canvas.parentElement.appendChild(head);
  const place = () => {
    if (!canvas.rollX) return;
    head.hidden = audio.currentTime === 0 && audio.paused;
    head.style.left = `${canvas.rollX(Math.min(tickAt(piece, audio.currentTime), canvas.rollEnd))}px`;
  };
  const frame = () => { place(); if (!audio.paused) requestAnimationFrame(frame); };
  audio.addEventListener("play", frame);
  audio.addEventListener("timeupdate", place);
  audio.addEventListener("seeked", place);
}
