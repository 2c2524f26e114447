"""Pieces the studio holds: uploaded prompts and generated candidates, each in its own
folder under the studio's work directory as ``piece.mid`` (and ``piece.wav`` once rendered)
with ``meta.json`` (what made it: model, time, prompt), addressed by a random id that a
request can name but never turn into a path."""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from pathlib import Path

from symusic import Score

from ..data.bars import bar_lines, bars_before
from ..data.corpus.reader import SkipFile, read_piano_score
from ..errors import CadenzaError
from ..files import read_regular, write_bytes_atomic
from ..render import render_wav

PIECE_ID = re.compile(r"[0-9a-f]{32}")
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
WAV_RATE = 22050  # the packaged piano's samples are 22.05 kHz: a higher rate adds nothing
KINDS = {"mid": ("piece.mid", "audio/midi"), "wav": ("piece.wav", "audio/wav")}
MAX_META_BYTES = 64 * 1024


class Pieces:
    def __init__(self, work: Path) -> None:
        self.root = Path(work) / "pieces"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def folder(self, piece_id) -> Path:
        """The folder of an existing piece; anything else is a CadenzaError."""
        if not isinstance(piece_id, str) or not PIECE_ID.fullmatch(piece_id):
            raise CadenzaError("a piece id is 32 hexadecimal digits")
        folder = self.root / piece_id
        if not (folder / "piece.mid").is_file():
            raise CadenzaError(f"no piece {piece_id}")
        return folder

    def midi(self, piece_id) -> Path:
        return self.folder(piece_id) / "piece.mid"

    def add(self, score: Score, wav: bool = True, **meta) -> str:
        """A new piece; ``meta``: what made it (``model`` or ``name``, ``prompt``, ``prompt_end``
        in ticks, ``number`` among its round's candidates, ``made``: a line such as "bars 3-4
        regenerated", ``span``: the ticks regenerated), kept for the page and file names."""
        piece_id = secrets.token_hex(16)
        folder = self.root / piece_id
        folder.mkdir()
        if wav:
            render_wav(score, folder / "piece.wav", sample_rate=WAV_RATE)
        meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta}
        write_bytes_atomic(folder / "meta.json", json.dumps(meta).encode())
        # last: a piece exists once its MIDI does (as bytes: dump_midi writes an empty file on a full disk)
        write_bytes_atomic(folder / "piece.mid", score.dumps_midi())
        return piece_id

    def meta(self, piece_id: str) -> dict:
        """What made the piece (empty for a piece of an older studio, which wrote none)."""
        path = self.folder(piece_id) / "meta.json"
        try:
            meta = json.loads(read_regular(path, MAX_META_BYTES))
        except (CadenzaError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def download_name(self, piece_id: str, ext: str, num_bars: int, meta: dict | None = None) -> str:
        """A name that sorts by model, then time: ``tiny-2026-12-07-1412-8bars-2.mid``."""
        meta = self.meta(piece_id) if meta is None else meta
        who = meta.get("model") or Path(str(meta.get("name") or "piece")).stem
        when = re.sub(r"\D", "", str(meta.get("created", "")))
        stamp = f"{when[:4]}-{when[4:6]}-{when[6:8]}-{when[8:12]}" if len(when) >= 12 else piece_id[:8]
        number = f"-{meta['number']}" if isinstance(meta.get("number"), int) else ""
        return f"{_safe(who).replace(' ', '_')}-{stamp}-{num_bars}bars{number}.{ext}"

    def add_upload(self, data: bytes, name: str = "upload.mid", merge: bool = True) -> str:
        """A prompt (or a melody) from uploaded bytes: size-limited and read as cadenza reads a
        corpus file (one piano part; ``merge=False``: its piano tracks as they are, so that a
        melody's track stays apart); what is not a usable MIDI file is a CadenzaError saying why."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise CadenzaError(f"the file is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
        if not data.startswith(b"MThd"):
            raise CadenzaError(f"{_safe(name)} is not a MIDI file")
        tmp = self.root / f".upload-{secrets.token_hex(8)}.mid"
        try:
            tmp.write_bytes(data)
            score = read_piano_score(tmp, merge=merge)
        except SkipFile as exc:
            raise CadenzaError(f"{_safe(name)} cannot be used: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return self.add(score, name=_safe(name))

    def info(self, piece_id: str) -> dict:
        """What the page shows of a piece: its piano roll (:func:`roll`), what made it, where
        its prompt ends (ticks; 0: no prompt), what made it, its file URLs and the names to save them as."""
        meta = self.meta(piece_id)
        piece = roll(Score(str(self.midi(piece_id))))
        return {"id": piece_id, **piece, "prompt_end": int(meta.get("prompt_end") or 0),
                **{k: meta.get(k) for k in ("model", "name", "prompt_name", "created", "made", "span")},
                "midi_url": f"/api/pieces/{piece_id}.mid", "wav_url": f"/api/pieces/{piece_id}.wav",
                "midi_name": self.download_name(piece_id, "mid", piece["num_bars"], meta),
                "wav_name": self.download_name(piece_id, "wav", piece["num_bars"], meta)}


def roll(score: Score) -> dict:
    """Notes of every track (a melody and its accompaniment, a piece and its regenerated bars)
    as ``[time, duration, pitch, velocity]`` ticks, bar lines, the end tick, the tempo map
    (for a playhead following the audio) and the length in bars and seconds."""
    tracks = [track.notes.numpy() for track in score.tracks]
    rows = [[int(t), int(d), int(p), int(v)] for c in tracks
            for t, d, p, v in zip(c["time"], c["duration"], c["pitch"], c["velocity"])]
    end = int(max(score.end(), 1))
    return {"tpq": score.tpq, "notes": rows, "bars": [int(b) for b in bar_lines(score, end)], "end": end,
            "num_bars": bars_before(score, end) if rows else 0, "seconds": round(float(score.to("second").end()), 3),
            "tempos": [[int(t.time), float(t.qpm)] for t in score.tempos]}


def _safe(name: str) -> str:
    """An uploaded file name fit to repeat in a message."""
    return re.sub(r"[^\w .-]", "_", str(name))[:80] or "the file"
