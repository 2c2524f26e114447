"""Pieces the studio holds: uploaded prompts and generated candidates, each in its own
folder under the studio's work directory as ``piece.mid`` (and ``piece.wav`` once rendered),
addressed by a random id that a request can name but never turn into a path."""
from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path

from symusic import Score

from ..bars import bar_lines, bars_before
from ..corpus.reader import SkipFile, read_piano_score
from ..errors import CadenzaError
from ..render import render_wav

PIECE_ID = re.compile(r"[0-9a-f]{32}")
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
WAV_RATE = 22050  # the packaged piano's samples are 22.05 kHz: a higher rate adds nothing
KINDS = {"mid": ("piece.mid", "audio/midi"), "wav": ("piece.wav", "audio/wav")}


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

    def add(self, score: Score, wav: bool = True) -> str:
        piece_id = secrets.token_hex(16)
        folder = self.root / piece_id
        folder.mkdir()
        if wav:
            render_wav(score, folder / "piece.wav", sample_rate=WAV_RATE)
        score.dump_midi(str(folder / "piece.mid"))  # last: a piece exists once its MIDI does
        return piece_id

    def add_upload(self, data: bytes, name: str = "upload.mid") -> str:
        """A prompt from uploaded bytes: size-limited and read as cadenza reads a corpus file
        (one piano part); what is not a usable MIDI file is a CadenzaError saying why."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise CadenzaError(f"the file is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
        if not data.startswith(b"MThd"):
            raise CadenzaError(f"{_safe(name)} is not a MIDI file")
        tmp = self.root / f".upload-{secrets.token_hex(8)}.mid"
        try:
            tmp.write_bytes(data)
            score = read_piano_score(tmp)
        except SkipFile as exc:
            raise CadenzaError(f"{_safe(name)} cannot be used: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return self.add(score)

    def info(self, piece_id: str) -> dict:
        """Notes (ticks) and bar lines for the page's piano roll, and the file URLs."""
        score = Score(str(self.midi(piece_id)))
        notes = score.tracks[0].notes.numpy() if score.tracks else None
        n = 0 if notes is None else len(notes["time"])
        end = int(max(score.end(), 1))
        rows = [] if not n else [[int(t), int(d), int(p), int(v)] for t, d, p, v in
                                 zip(notes["time"], notes["duration"], notes["pitch"], notes["velocity"])]
        return {"id": piece_id, "tpq": score.tpq, "notes": rows, "bars": [int(b) for b in bar_lines(score, end)],
                "num_bars": bars_before(score, end) if n else 0, "seconds": round(float(score.to("second").end()), 3),
                "midi_url": f"/api/pieces/{piece_id}.mid", "wav_url": f"/api/pieces/{piece_id}.wav"}


def _safe(name: str) -> str:
    """An uploaded file name fit to repeat in a message."""
    return re.sub(r"[^\w .-]", "_", str(name))[:80] or "the file"
