"""The studio's web app: one page (``static/``) over a small JSON API, a thin layer over
cadenza's Python API (``generate``, ``infill``, ``accompany``, ``render``, ``cadenza train``).

Safety: only the studio's own page may use it (``guard.py``: Host, Origin, content type and a
per-launch token); each field is checked once (``checks.py``), bodies are size-limited before
they are read (``limits.py``); models are named by id (``models.resolve``), pieces by a random id, uploads
are size-limited before they are read and parsed as a corpus file is; a training reads only
folders under the ``--corpora`` folders named at launch, or an upload; every error is a 4xx
with ``{"error": "one line"}`` (an unforeseen one a 500 and one log line), never a traceback.
"""
from __future__ import annotations

import asyncio
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import rundir
from ..data.bars import bar_tick
from ..config import PRESETS, Config
from ..data.controls import has_controls
from ..data.fim import has_markers
from ..errors import CadenzaError
from ..generation.accompany import accompany, read_melody
from ..generation.generate import generate, to_scores
from ..generation.infill import infill, read_piece, span_ticks
from ..rundir import load_run
from . import models
from .checks import FieldError, accompany_params, as_field, generation_params, infill_params, number, read_body
from .guard import COOKIE, Access, Guard
from .history import History
from .jobs import Job, Training, Worker
from .limits import MAX_CORPUS_FILES, BodyLimit, OneLineErrors
from .pieces import KINDS, MAX_UPLOAD_BYTES, Pieces

STATIC = Path(__file__).parent / "static"


class Studio:
    """What the app holds: the runs folder, the pieces, their history, the worker, the trainings."""

    def __init__(self, runs: Path, work: Path, corpora=()) -> None:
        self.runs, self.work = Path(runs), Path(work)
        self.corpora = [Path(c).expanduser().resolve() for c in corpora]
        self.runs.mkdir(parents=True, exist_ok=True)
        self.pieces = Pieces(self.work)
        self.history = History(self.work)
        self.worker = Worker()
        self.trainings: dict[str, Training] = {}
        self._runs: dict[Path, tuple[float, object]] = {}

    def model_path(self, body: dict) -> Path:
        """The run of the model a request names (its ``model`` field)."""
        return as_field("model", models.resolve, self.runs, body.get("model"))

    @staticmethod
    def model_config(path: Path) -> Config:
        return as_field("model", Config.load, path / rundir.CONFIG)

    def run(self, path: Path):
        """A loaded run, cached until its best weights change (worker thread only)."""
        stamp = (path / "best.safetensors").stat().st_mtime
        if path not in self._runs or self._runs[path][0] != stamp:
            self._runs[path] = (stamp, load_run(path))
        return self._runs[path][1]

    def generation(self, job: Job, model_id: str, path: Path, p: dict) -> dict:
        """Candidates for the request ``p``, each stored with what made it, and one more round
        in the history; the answer names the prompt they continue."""
        run = self.run(path)
        primer = self.pieces.midi(p["prompt"]) if p.get("prompt") else None
        name = self.prompt_name(p["prompt"])
        with reworded({f"primer {primer}": f"the prompt {name}"}):
            result = generate(run, num=p["num"], length=p["bars"], unit="bars", sampling=p["sampling"],
                              form=p["form"], seed=p["seed"], primer=primer,
                              primer_bars=p.get("prompt_bars"), quiet=True, log=lambda msg: None,
                              progress=job.progress, steer=p.get("steer"))
        prompt_end = bar_tick(result.primer.score, result.primer.bars) if result.primer is not None else 0
        return self.round(model_id, to_scores(run, result), result.warnings, prompt=p["prompt"], prompt_name=name,
                          prompt_end=prompt_end)

    def infill_ready(self, model_id: str, path: Path, p: dict) -> None:
        """What would fail at once, refused before the job is queued: a piece that is not there,
        a model not trained for infill, a span outside the piece."""
        source = as_field("piece", self.pieces.midi, p["piece"])
        if not has_markers(self.model_config(path)):
            raise CadenzaError(f"model {model_id} was not trained for infill: pick a model fine-tuned with infill "
                               f"(on the command line: cadenza train FOLDER --from {model_id} --infill 0.5)")
        with reworded(words(model_id, path, source, "the piece")):
            as_field("last", span_ticks, read_piece(source), p["first"], p["last"], "the piece")

    def infilling(self, job: Job, model_id: str, path: Path, p: dict) -> dict:
        """Candidates of the piece ``p["piece"]`` with bars ``first``-``last`` regenerated."""
        source = self.pieces.midi(p["piece"])
        with reworded(words(model_id, path, source, "the piece")):
            result = infill(self.run(path), source, (p["first"], p["last"]), num=p["num"], sampling=p["sampling"],
                            seed=p["seed"], quiet=True, log=lambda msg: None, progress=job.progress)
        return self.round(model_id, result.scores, result.warnings, prompt=p["piece"],
                          made=f"bars {result.first}-{result.last} regenerated", span=[result.start, result.end])

    def melody_ready(self, model_id: str, path: Path, p: dict) -> None:
        """The uploaded melody's track found (or the reason it is not), before the job is queued."""
        melody = self.pieces.midi(p["melody"])
        with reworded(words(model_id, path, melody, p["name"])):
            as_field("melody_track", read_melody, melody, p["melody_track"])

    def accompaniment(self, job: Job, model_id: str, path: Path, p: dict) -> dict:
        """Candidates of the uploaded melody ``p["melody"]`` with an accompaniment under it."""
        melody = self.pieces.midi(p["melody"])
        with reworded(words(model_id, path, melody, p["name"])):
            result = accompany(self.run(path), melody, num=p["num"], melody_track=p["melody_track"],
                               sampling=p["sampling"], seed=p["seed"], quiet=True, log=lambda msg: None,
                               progress=job.progress)
        return self.round(model_id, result.scores, result.warnings, prompt=p["melody"], prompt_name=p["name"],
                          made=f"accompanying {p['name']}")

    def round(self, model_id: str, scores: list, warnings: list[str], prompt: str | None = None,
              prompt_name: str | None = None, made: str | None = None, **meta) -> dict:
        """The candidates, each stored with what made it, and one more round in the history; the
        answer names the piece they come from and what was done (``made``; None: generated)."""
        ids = [self.pieces.add(score, model=model_id, prompt=prompt, prompt_name=prompt_name, made=made,
                               number=k + 1, **meta) for k, score in enumerate(scores)]
        self.history.add_round(model_id, ids, prompt, prompt_name, made)
        return {"candidates": [self.pieces.info(i) for i in ids], "warnings": warnings,
                "prompt": {"id": prompt, "name": prompt_name}, "about": made}

    def prompt_name(self, piece_id: str | None) -> str | None:
        """How the page names a prompt: the uploaded file's name, or the kept piece."""
        if piece_id is None:
            return None
        meta = self.pieces.meta(piece_id)
        return meta.get("name") or f"the kept piece from {meta.get('model') or 'a model'}"

    def infos(self, piece_ids: list[str]) -> list[dict]:
        """The pieces that are still there (a folder removed by hand is left out)."""
        found = []
        for piece_id in piece_ids:
            try:
                found.append(self.pieces.info(piece_id))
            except (CadenzaError, OSError, RuntimeError):  # RuntimeError: symusic on a damaged file
                continue
        return found


@contextmanager
def reworded(replacements: dict[str, str]):
    """A CadenzaError of the Python API in the page's words: each key of ``replacements`` (a
    file in the work folder, a command-line flag) said as its value."""
    try:
        yield
    except CadenzaError as exc:
        text = str(exc)
        for old, new in replacements.items():
            text = text.replace(old, new)
        raise (FieldError(exc.field, text) if isinstance(exc, FieldError) else CadenzaError(text)) from None


def words(model_id: str, path: Path, file: Path, name: str) -> dict[str, str]:
    """How the page says what infill's and accompany's messages name: the file by the name the
    page knows, the run by its model id, the span and the melody track by their fields."""
    return {str(file): name, str(path): f"model {model_id}", "--bars ": "bars ",
            "with --melody-track NAME": "in the melody track field"}


# -- endpoints -----------------------------------------------------------------------------
async def index(request: Request):
    """The page, holding this launch's token (on the network: only for a request that has it)."""
    guard: Access = request.app.state.access
    if guard.network and not guard.has_token(request.headers, request.url.query):
        return HTMLResponse("<p>This studio needs its token: open the URL that <code>cadenza studio</code> printed "
                            "when it started.</p>", status_code=403)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    meta = f'<meta name="cadenza-token" content="{guard.token}">'
    response = HTMLResponse(page.replace("<meta charset=\"utf-8\">", f"<meta charset=\"utf-8\">\n{meta}", 1))
    response.headers["Cache-Control"] = "no-store"
    if guard.network:
        response.set_cookie(COOKIE, guard.token, httponly=True, samesite="strict")
    return response


async def api_models(request: Request):
    studio: Studio = request.app.state.studio
    return JSONResponse(await run_in_threadpool(models.list_models, studio.runs))


async def api_prompts(request: Request):
    studio: Studio = request.app.state.studio
    _, data, name = await read_body(request)
    if data is None:
        raise FieldError("prompt", "upload a MIDI file as the form field 'file'")
    piece_id = await run_in_threadpool(as_field, "prompt", studio.pieces.add_upload, data, name)
    return JSONResponse(await run_in_threadpool(studio.pieces.info, piece_id), status_code=201)


async def api_generate(request: Request):
    studio: Studio = request.app.state.studio
    body, data, name = await read_body(request)
    params = generation_params(body)
    path = await run_in_threadpool(studio.model_path, body)
    if data is not None:  # an uploaded prompt, taken as it comes
        params["prompt"] = await run_in_threadpool(as_field, "prompt", studio.pieces.add_upload, data, name)
    elif params["prompt"]:
        as_field("prompt", studio.pieces.folder, params["prompt"])
    if params["steer"].density and not has_controls(studio.model_config(path)):
        raise FieldError("density", f"model {body['model']} was not trained with density controls: pick a model "
                         f"fine-tuned with them (on the command line: cadenza train FOLDER --from {body['model']} "
                         f"--controls 0.5)")
    job = studio.worker.submit("generate", lambda job: studio.generation(job, body["model"], path, params))
    return await answer(job, body)


async def api_infill(request: Request):
    """Regenerate bars of a piece the studio holds (a candidate, the kept piece)."""
    studio: Studio = request.app.state.studio
    body, _, _ = await read_body(request)
    params = infill_params(body)
    path = await run_in_threadpool(studio.model_path, body)
    await run_in_threadpool(studio.infill_ready, body["model"], path, params)
    job = studio.worker.submit("infill", lambda job: studio.infilling(job, body["model"], path, params))
    return await answer(job, body)


async def api_accompany(request: Request):
    """Accompany an uploaded melody (a multipart form: the file and the fields)."""
    studio: Studio = request.app.state.studio
    body, data, name = await read_body(request)
    params = accompany_params(body)
    path = await run_in_threadpool(studio.model_path, body)
    if data is None:
        raise FieldError("melody", "upload the melody as a MIDI file (the form field 'file')")
    params["melody"] = await run_in_threadpool(as_field, "melody", studio.pieces.add_upload, data, name, False)
    params["name"] = studio.pieces.meta(params["melody"]).get("name") or "the melody"
    await run_in_threadpool(studio.melody_ready, body["model"], path, params)
    job = studio.worker.submit("accompany", lambda job: studio.accompaniment(job, body["model"], path, params))
    return await answer(job, body)


async def answer(job: Job, body: dict) -> JSONResponse:
    """A queued job: its view at once (``wait`` false: the page follows it), or its candidates
    once it is done (a 409 with its one-line error when it is not)."""
    if str(body.get("wait", "true")).lower() in ("false", "0", "no"):
        return JSONResponse(job.view(), status_code=202)
    await asyncio.get_running_loop().run_in_executor(None, job.finished.wait)
    if job.state != "done":
        return JSONResponse({"error": job.error or f"{job.kind} {job.state}", "job": job.id}, status_code=409)
    return JSONResponse({"job": job.id, **job.result})


async def api_job(request: Request):
    return JSONResponse(request.app.state.studio.worker.get(request.path_params["job"]).view())


async def api_cancel(request: Request):
    job = request.app.state.studio.worker.get(request.path_params["job"])
    job.cancel_requested = True
    return JSONResponse(job.view())


async def api_piece(request: Request):
    studio: Studio = request.app.state.studio
    piece_id, _, ext = request.path_params["name"].partition(".")
    if ext == "json":
        return JSONResponse(await run_in_threadpool(studio.pieces.info, piece_id))
    if ext not in KINDS:
        raise HTTPException(404, "ask for .mid, .wav or .json")
    file, media = KINDS[ext]
    path = studio.pieces.folder(piece_id) / file
    if not path.is_file():
        raise HTTPException(404, f"piece {piece_id} has no {ext}")
    info = await run_in_threadpool(studio.pieces.info, piece_id)
    return FileResponse(path, media_type=media, filename=info["midi_name" if ext == "mid" else "wav_name"])


async def api_history(request: Request):
    """The rounds and kept pieces (ids), with the last round's candidates and the piece so far
    in full: what the page shows after a reload or a restart."""
    studio: Studio = request.app.state.studio
    history = studio.history.view()
    last = history["rounds"][-1]["candidates"] if history["rounds"] else []
    candidates = await run_in_threadpool(studio.infos, last)
    piece = await run_in_threadpool(studio.infos, history["kept"][-1:])
    return JSONResponse({**history, "candidates": candidates, "piece": piece[0] if piece else None})


async def api_keep(request: Request):
    """Keep a piece: it becomes the piece so far (and the prompt of the next round)."""
    studio: Studio = request.app.state.studio
    body, _, _ = await read_body(request)
    piece_id = body.get("piece")
    as_field("piece", studio.pieces.folder, piece_id)
    await run_in_threadpool(studio.history.keep, piece_id)
    info = await run_in_threadpool(studio.pieces.info, piece_id)
    return JSONResponse({"kept": studio.history.view()["kept"], "piece": info})


async def api_keep_undo(request: Request):
    """Undo the last Keep: the piece kept before it (or none) is the piece so far again."""
    studio: Studio = request.app.state.studio
    await run_in_threadpool(studio.history.undo_keep)
    kept = studio.history.view()["kept"]
    infos = await run_in_threadpool(studio.infos, kept[-1:])
    return JSONResponse({"kept": kept, "piece": infos[0] if infos else None})


# -- training ------------------------------------------------------------------------------
def training_args(studio: Studio, body: dict) -> tuple[list[str], Path]:
    name, source = body.get("name"), body.get("source") or "bach"
    if not isinstance(name, str) or not models.ID.fullmatch(name):
        raise FieldError("name", "name the new model: letters, digits, '.', '_' or '-', at most 64")
    if (studio.runs / name).exists():
        raise FieldError("name", f"a model named {name!r} exists already; choose another name "
                                 "(a stopped training of this studio continues with Resume)")
    preset = body.get("preset") or "base"
    if preset not in PRESETS:
        raise FieldError("preset", f"preset must be one of {', '.join(PRESETS)}")
    minutes = number(body, "minutes", 10.0, False, 0.05, 24 * 60)
    if not isinstance(source, str):
        raise FieldError("source", "source must be a folder path on this machine, 'bach' or an uploaded corpus")
    if source.startswith("upload:"):
        folder = studio.work / "corpora" / source[7:]
        if not models.ID.fullmatch(source[7:]) or not folder.is_dir():
            raise FieldError("source", "no such uploaded corpus")
        source = str(folder)
    elif source != "bach":
        source = str(as_field("source", _allowed_source, studio, source))
    args = [source, "--max-minutes", f"{minutes:g}"]
    if body.get("from"):  # a fine-tune takes the starting model's preset, tokenizer and model
        args += ["--from", str(as_field("from", models.resolve, studio.runs, body["from"]))]
    else:
        args += ["--preset", preset]
    if body.get("steps_per_epoch"):
        args += ["--steps-per-epoch", str(number(body, "steps_per_epoch", None, True, 1, 10**6))]
    return args, studio.runs / name


def _allowed_source(studio: Studio, source: str) -> Path:
    """A folder on this machine, only under the ``--corpora`` folders named at launch."""
    if not studio.corpora:
        raise CadenzaError("training from a folder on this machine needs `cadenza studio --corpora DIR`; "
                           "upload the files instead")
    path = Path(source).expanduser()
    if not path.is_absolute() or not path.exists():
        raise CadenzaError(f"no such folder or file on this machine: {source[:200]!r}")
    path = path.resolve()
    if not any(path.is_relative_to(root) for root in studio.corpora):
        raise CadenzaError(f"only folders under {', '.join(map(str, studio.corpora))[:300]} can be trained on "
                           "(the --corpora folders this studio was started with)")
    return path


async def api_train_start(request: Request):
    studio: Studio = request.app.state.studio
    body, _, _ = await read_body(request)
    if any(t.view()["state"] == "running" for t in studio.trainings.values()):
        raise CadenzaError("a training is running already: stop it or wait for it")
    args, run_dir = training_args(studio, body)
    training = Training(args, run_dir)
    studio.trainings[training.id] = training
    return JSONResponse(training.view(), status_code=201)


def _training(request: Request) -> Training:
    training = request.app.state.studio.trainings.get(request.path_params["train"])
    if training is None:
        raise CadenzaError("no such training")
    return training


async def api_trainings(request: Request):
    return JSONResponse([t.view() for t in request.app.state.studio.trainings.values()])


async def api_train(request: Request):
    return JSONResponse(await run_in_threadpool(_training(request).view))


async def api_train_stop(request: Request):
    training = _training(request)
    training.stop()
    return JSONResponse(training.view())


async def api_train_resume(request: Request):
    """Continue a stopped training of this studio from its saved state (``cadenza train
    --run-dir RUN --resume``), under the same id, with its own budget again."""
    studio: Studio = request.app.state.studio
    training = _training(request)
    if training.view()["state"] == "running":
        raise CadenzaError("this training is running already")
    if any(t.view()["state"] == "running" for t in studio.trainings.values()):
        raise CadenzaError("a training is running already: stop it or wait for it")
    if not (training.run_dir / rundir.STATE).is_file():
        raise CadenzaError(f"{training.run_dir.name} stopped before it saved a state: start it again under a new name")
    resumed = Training(["--resume"], training.run_dir, training_id=training.id)
    studio.trainings[training.id] = resumed
    return JSONResponse(resumed.view(), status_code=201)


async def api_corpora(request: Request):
    """Uploaded training files: saved, under safe names, into a new folder of the work dir."""
    studio: Studio = request.app.state.studio
    form = await request.form(max_files=MAX_CORPUS_FILES, max_fields=MAX_CORPUS_FILES, max_part_size=64 * 1024)
    files = [data for value in form.values() if not isinstance(value, str)
             if len(data := await value.read(MAX_UPLOAD_BYTES + 1)) <= MAX_UPLOAD_BYTES and data.startswith(b"MThd")]
    if not files:
        raise CadenzaError("no MIDI file among the uploaded files")
    key = secrets.token_hex(8)
    folder = studio.work / "corpora" / key
    await run_in_threadpool(_save_corpus, folder, files)
    return JSONResponse({"corpus": f"upload:{key}", "files": len(files)}, status_code=201)


def _save_corpus(folder: Path, files: list[bytes]) -> None:
    """The files under a temporary name, renamed into place whole: no half corpus, no empty folder."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    tmp.mkdir(parents=True)
    try:
        for k, data in enumerate(files):
            (tmp / f"{k:04d}.mid").write_bytes(data)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- the app ---------------------------------------------------------------------------------
async def _cadenza_error(request: Request, exc: CadenzaError):
    answer = {"error": str(exc).splitlines()[0] if str(exc) else "bad request"}
    if isinstance(exc, FieldError):
        answer["field"] = exc.field
    return JSONResponse(answer, status_code=400)


async def _http_error(request: Request, exc: HTTPException):
    return JSONResponse({"error": str(exc.detail).splitlines()[0]}, status_code=exc.status_code)


def create_app(runs: Path, work: Path, token: str | None = None, network: bool = False, bound: str = "127.0.0.1",
               corpora=()) -> Starlette:
    """The studio over ``runs``; ``token`` (made here when None), ``network`` and ``bound`` as in
    :class:`guard.Access`; ``corpora``: the folders whose subfolders a training may read."""
    routes = [
        Route("/", index),
        Route("/api/models", api_models),
        Route("/api/prompts", api_prompts, methods=["POST"]),
        Route("/api/generate", api_generate, methods=["POST"]),
        Route("/api/infill", api_infill, methods=["POST"]),
        Route("/api/accompany", api_accompany, methods=["POST"]),
        Route("/api/jobs/{job}", api_job),
        Route("/api/jobs/{job}/cancel", api_cancel, methods=["POST"]),
        Route("/api/pieces/{name}", api_piece),
        Route("/api/history", api_history),
        Route("/api/keep", api_keep, methods=["POST"]),
        Route("/api/keep/undo", api_keep_undo, methods=["POST"]),
        Route("/api/corpora", api_corpora, methods=["POST"]),
        Route("/api/train", api_trainings),
        Route("/api/train", api_train_start, methods=["POST"]),
        Route("/api/train/{train}", api_train),
        Route("/api/train/{train}/stop", api_train_stop, methods=["POST"]),
        Route("/api/train/{train}/resume", api_train_resume, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {CadenzaError: _cadenza_error, HTTPException: _http_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.studio = Studio(runs, work, corpora)
    app.state.access = Access(token or secrets.token_urlsafe(32), network, bound)
    app.add_middleware(OneLineErrors)
    app.add_middleware(BodyLimit)
    app.add_middleware(Guard, access=app.state.access)
    return app
