"""What a studio request may hold: its fields checked once, each error naming its field
(:class:`FieldError`, so the page can show it beside that field), and its body read as JSON
or a multipart form."""
from __future__ import annotations

import json
import math

from starlette.requests import Request

from ..errors import CadenzaError
from ..generation.form import parse_form
from ..generation.sampling import Sampling
from ..data.controls import TARGETS
from ..generation.steer import Steer
from ..spec import SpecError
from ..validate import config_specs
from .pieces import MAX_UPLOAD_BYTES

_SEED = config_specs()["seed"]  # the config's rule for a seed; the other ranges are the page's own
LIMITS = {"num": (1, 8), "bars": (1, 64), "prompt_bars": (1, 256), "seed": (_SEED.lo, _SEED.hi - 1),
          "first": (1, 1024), "last": (1, 1024)}


class FieldError(CadenzaError):
    """A request field that is wrong: the answer names it (``"field"``), so the page can show
    the reason beside that field."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.field = name


def number(body: dict, name: str, default, integer: bool, lo: float, hi: float):
    """The field ``name`` as a number from ``lo`` to ``hi`` (``default`` when absent or empty)."""
    value = body.get(name, default)
    if value is None or value == "":
        return default
    parsed = _parsed(name, value, integer)
    in_range = lo <= parsed <= hi  # compared before isfinite, which overflows on a huge integer
    if isinstance(value, bool) or not in_range or not math.isfinite(parsed) or (integer and parsed != int(parsed)):
        raise FieldError(name, f"{name} must be {'a whole number' if integer else 'a number'} from {lo:g} to {hi:g}")
    return int(parsed) if integer else parsed


def _parsed(name: str, value, integer: bool):
    """A field's value (a JSON number or a form's text) as a number."""
    try:
        return int(value) if integer and not isinstance(value, float) else float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit number as a float
        raise FieldError(name, f"{name} must be a number") from None


def _sampling(body: dict) -> Sampling:
    """The sampling fields (absent or empty: the model's own), checked by the declaration the
    command line and a run's config.json use (:data:`cadenza.generation.sampling.SPECS`)."""
    given = {name: body.get(name) for name in ("temperature", "top_p", "min_p")}
    for name, value in given.items():
        if isinstance(value, bool):  # float(True) would be 1.0
            raise FieldError(name, f"{name} must be a number")
        given[name] = None if value in (None, "") else _parsed(name, value, False)
    try:
        return Sampling(**given)
    except SpecError as exc:
        raise FieldError(exc.field, str(exc)) from None


COMMON = {"model", "num", "temperature", "top_p", "min_p", "seed", "wait"}  # every action's fields


def _candidates(body: dict, fields: set[str]) -> dict:
    """What every action takes (how many candidates, their seed and sampling), the request
    holding no field but these and ``fields``."""
    unknown = set(body) - COMMON - fields
    if unknown:
        raise CadenzaError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    p = {name: number(body, name, default, True, *LIMITS[name]) for name, default in (("num", 2), ("seed", None))}
    p["sampling"] = _sampling(body)
    return p


def generation_params(body: dict) -> dict:
    p = _candidates(body, {"bars", "form", "prompt", "prompt_bars", "key", "tempo", "density"})
    p.update({name: number(body, name, default, True, *LIMITS[name])
              for name, default in (("bars", 8), ("prompt_bars", None))})
    p["form"] = _form(body.get("form"))
    p["steer"] = _steer(body)
    p["prompt"] = body.get("prompt") or None
    return p


def infill_params(body: dict) -> dict:
    """Regenerate bars ``first`` to ``last`` (counted from 1) of the piece ``piece``."""
    p = _candidates(body, {"piece", "first", "last"})
    for name in ("first", "last"):
        p[name] = number(body, name, None, True, *LIMITS[name])
        if p[name] is None:
            raise FieldError(name, f"{name} is needed: the span's {name} bar, counted from 1")
    if p["last"] < p["first"]:
        raise FieldError("last", f"last must be bar {p['first']} or later (the span's first bar)")
    p["piece"] = body.get("piece")
    return p


def accompany_params(body: dict) -> dict:
    """Accompany the uploaded melody: its one track with notes, or ``melody_track`` (a name,
    or a number from 1)."""
    p = _candidates(body, {"melody_track"})
    track = body.get("melody_track")
    track = str(track) if isinstance(track, int) and not isinstance(track, bool) else track
    if track not in (None, "") and (not isinstance(track, str) or len(track) > 100):
        raise FieldError("melody_track", "melody_track must be a track's name or its number from 1")
    p["melody_track"] = track or None
    return p


def _steer(body: dict) -> Steer:
    """The key, tempo and density asked (absent or empty: the music's own), checked by
    :class:`Steer` as on the command line."""
    key, tempo, density = body.get("key"), body.get("tempo"), body.get("density")
    key = None if key in (None, "") else key
    density = None if density in (None, "") else density
    if density is not None and density not in TARGETS:
        raise FieldError("density", f"density must be low, medium or high, not {str(density)[:40]!r}")
    if isinstance(tempo, bool):
        raise FieldError("tempo", "tempo must be a number")
    tempo = None if tempo in (None, "") else _parsed("tempo", tempo, False)
    if key is not None and not isinstance(key, str):
        raise FieldError("key", "key must be a name such as A:minor")
    try:
        return Steer(key=key, tempo=tempo, density=density)
    except SpecError as exc:
        raise FieldError(exc.field, str(exc)) from None
    except CadenzaError as exc:
        raise FieldError("key", str(exc)) from None


def _form(form) -> str | None:
    if form in (None, ""):
        return None
    try:
        if isinstance(form, str):
            return parse_form(form) or "none"
    except CadenzaError:
        pass
    raise FieldError("form", "form must be letters such as AABA (a letter heard before repeats its section), "
                             "or none")


async def read_body(request: Request) -> tuple[dict, bytes | None, str]:
    """The request's fields (JSON or a form) and an uploaded file, if any: (fields, bytes, name)."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20, max_part_size=64 * 1024)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = next((v for v in form.values() if not isinstance(v, str)), None)
        data = await upload.read(MAX_UPLOAD_BYTES + 1) if upload is not None else None
        return fields, data, getattr(upload, "filename", "") or "upload.mid"
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise CadenzaError("the request body is not JSON (or a multipart form)") from None
    if not isinstance(body, dict):
        raise CadenzaError("the request body must be a JSON object")
    return body, None, ""


def as_field(name: str, fn, *args):
    """``fn(*args)``, its CadenzaError said as one about the request field ``name``."""
    try:
        return fn(*args)
    except FieldError:
        raise
    except CadenzaError as exc:
        raise FieldError(name, str(exc)) from None
