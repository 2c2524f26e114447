// cadenza studio: training a model (start, stop, resume, follow its loss), then the page's wiring.
"use strict";

// A fine-tune takes the preset of the model it starts from: the menu says so by being disabled.
function fromChanged() {
  const from = $("train-from").value;
  $("train-preset").disabled = Boolean(from);
  $("train-preset").title = from ? `a fine-tune keeps the preset of ${from}` : "";
  $("preset-note").hidden = !from;
  localStorage.setItem("cadenza.trainFrom", from);
}

async function startTraining() {
  clearErrors("train-section");
  try {
    let source = $("train-source").value.trim();
    const files = $("train-files").files;
    if (files.length) {
      const form = new FormData();
      for (const f of files) form.append("files", f);
      source = (await api("/api/corpora", { method: "POST", body: form })).corpus;
    }
    const body = { name: $("train-name").value.trim(), source: source || "bach", minutes: Number($("train-minutes").value) };
    if ($("train-from").value) body.from = $("train-from").value; else body.preset = $("train-preset").value;
    follow(await postJSON("/api/train", body));
  } catch (e) { fail("train-section", e); }
}

async function resumeTraining() {
  clearErrors("train-section");
  try { follow(await postJSON(`/api/train/${state.training}/resume`, {})); } catch (e) { fail("train-section", e); }
}

function follow(training) {
  state.training = training.id;
  pollTraining();
}

async function pollTraining() {
  let t;
  try { t = await api(`/api/train/${state.training}`); } catch (e) { fail("train-section", e); return; }
  const running = t.state === "running";
  $("train-start").disabled = running; $("train-stop").hidden = !running; $("train-resume").hidden = !t.resumable;
  $("train-status").textContent = `${t.model}: ${t.state}, ${Math.round(t.elapsed_s)} s` +
    (t.resumable ? " (Resume continues it from where it stopped)" : "");
  $("train-log").hidden = false; $("train-log").textContent = t.log.join("\n");
  $("train-curve").hidden = false; drawCurve($("train-curve"), t.curve);
  if (t.error) fail("train-section", { message: t.error });
  if (running) setTimeout(pollTraining, 1000); else loadModels().catch((e) => fail("models-section", e));
}

async function loadTrainings() {  // after a reload: the studio's last training, with its Stop or Resume
  const trainings = await api("/api/train");
  if (trainings.length) follow(trainings[trainings.length - 1]);
}

// -- wiring -------------------------------------------------------------------------------------
function dropTarget(section, onFile) {
  section.addEventListener("dragover", (e) => { e.preventDefault(); section.classList.add("dropping"); });
  section.addEventListener("dragleave", () => section.classList.remove("dropping"));
  section.addEventListener("drop", (e) => {
    e.preventDefault(); section.classList.remove("dropping");
    const files = [...(e.dataTransfer ? e.dataTransfer.files : [])];
    const file = files.find((f) => /\.midi?$/i.test(f.name)) || files[0];
    if (file) onFile(file);
  });
}

$("prompt-file").addEventListener("change", () => $("prompt-file").files[0] && uploadPrompt($("prompt-file").files[0]));
dropTarget($("prompt-section"), uploadPrompt);
$("prompt-clear").addEventListener("click", clearPrompt);
$("generate").addEventListener("click", startGeneration);
$("accompany").addEventListener("click", startAccompany);
$("cancel").addEventListener("click", () => state.job && postJSON(`/api/jobs/${state.job}/cancel`, {}).catch((e) => fail("options-section", e)));
$("undo-keep").addEventListener("click", undoKeep);
$("train-from").addEventListener("change", fromChanged);
$("train-start").addEventListener("click", startTraining);
$("train-stop").addEventListener("click", () => postJSON(`/api/train/${state.training}/stop`, {}).catch((e) => fail("train-section", e)));
$("train-resume").addEventListener("click", resumeTraining);
loadModels().catch((e) => showBanner(`cannot list the models: ${e.message}`));
loadHistory().catch((e) => fail("history-section", e));
loadTrainings().catch((e) => fail("train-section", e));
