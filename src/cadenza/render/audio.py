"""WAV synthesis: cadenza's own SoundFont sampler (numpy, see sf2.py) by default, or the
FluidSynth command-line program; the General MIDI SoundFont arrives with the ``pretty_midi``
wheel (``TimGM6mb.sf2``), so WAV needs pip packages alone."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import symusic

from cadenza.errors import CadenzaError
from cadenza.data.corpus.pedal import sustain
from cadenza.data.scores import ScoreLike, in_ticks, load_score
from cadenza.render.sf2 import synthesize
from cadenza.files import atomic_path

INSTALL_HINT = "apt-get install fluidsynth fluid-soundfont-gm"
SYNTHS = ("sampler", "fluidsynth")
#: the font that ships inside the pretty_midi wheel (a dependency): used unless told otherwise
PACKAGED_SOUNDFONT = ("pretty_midi", "TimGM6mb.sf2")
#: searched in this order after --soundfont, $CADENZA_SOUNDFONT and the packaged font
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/*.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/*.sf2",
    "/usr/share/sounds/sf3/*.sf3",
    "/usr/share/soundfonts/*.sf3",
)
GAIN = 0.5
TIMEOUT_S = 600
#: seconds of release kept after the last note ends (FluidSynth renders ~3 s of reverb tail)
TAIL_S = 0.75
FADE_S = 0.5
PEAK = 10 ** (-1 / 20)  # normalise to -1 dBFS


class AudioUnavailable(CadenzaError):
    """FluidSynth or a SoundFont is missing; the message says what to install."""


def packaged_soundfont() -> Path | None:
    """The General MIDI SoundFont inside the installed pretty_midi package (not imported)."""
    package, name = PACKAGED_SOUNDFONT
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def find_fluidsynth() -> str:
    """Path of the fluidsynth program on $PATH, else AudioUnavailable."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AudioUnavailable(
            f"FluidSynth is not installed (no 'fluidsynth' on PATH): run `{INSTALL_HINT}` to write WAV audio"
        )
    return exe


def find_soundfont(soundfont=None) -> Path:
    """The SoundFont to use: ``soundfont``, else $CADENZA_SOUNDFONT, else the first usual one.

    An explicitly given file that does not exist is a CadenzaError (a usage error); finding
    none at all is AudioUnavailable.
    """
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise CadenzaError(f"SoundFont not found: {path}")
        return path
    env = os.environ.get("CADENZA_SOUNDFONT")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise CadenzaError(f"SoundFont not found: {path} (from $CADENZA_SOUNDFONT)")
        return path
    packaged = packaged_soundfont()
    if packaged is not None:
        return packaged
    for pattern in SOUNDFONT_CANDIDATES:
        for hit in sorted(glob.glob(pattern)):
            if Path(hit).is_file():
                return Path(hit)
    raise AudioUnavailable(
        f"no General MIDI SoundFont found (pretty_midi is not installed and none is in "
        f"/usr/share/sounds/sf2 or /usr/share/soundfonts): run `pip install pretty_midi` or pass --soundfont PATH"
    )


def render_wav(midi_path_or_score: ScoreLike, wav_path, soundfont=None, sample_rate: int = 44100,
               synth: str = "sampler", overwrite: bool = True) -> Path:
    """Synthesise a MIDI file or Score to a 16-bit stereo WAV file; returns the WAV path.

    ``synth`` is ``"sampler"`` (cadenza's own, numpy) or ``"fluidsynth"`` (the program, where
    installed); the sustain pedal (CC 64) holds the notes it catches. The WAV keeps TAIL_S seconds after the end of the music (fading out) and its
    peak is normalised to -1 dBFS. Raises AudioUnavailable when FluidSynth or a SoundFont is
    missing and CadenzaError when synthesis fails. The WAV is written atomically and never
    through a link; ``overwrite=False`` refuses to replace an existing file.
    """
    if synth not in SYNTHS:
        raise CadenzaError(f"unknown synthesizer {synth!r}: choose {' or '.join(SYNTHS)}")
    score = midi_path_or_score if isinstance(midi_path_or_score, symusic.Score) else load_score(midi_path_or_score)
    score = sustain(in_ticks(score))  # a key released under the pedal sounds until the pedal lifts
    sf = find_soundfont(soundfont)
    wav_path = Path(os.path.abspath(wav_path))  # a link at the output is replaced, never followed
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    if synth == "fluidsynth":
        audio, rate = _fluidsynth(score, sf, int(sample_rate)), int(sample_rate)
    else:
        audio, rate = synthesize(score, sf, int(sample_rate)), int(sample_rate)
    _write_wav(wav_path, _finish(audio, rate, float(score.to("second").end()) + TAIL_S), rate, overwrite)
    return wav_path


def _fluidsynth(score: symusic.Score, sf: Path, rate: int) -> np.ndarray:
    """Run ``fluidsynth -ni -g GAIN -F OUT -r RATE SOUNDFONT MIDI``; the audio as float frames."""
    exe = find_fluidsynth()
    with tempfile.TemporaryDirectory(prefix="cadenza-wav-") as tmp:
        midi, out = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        score.dump_midi(str(midi))
        cmd = [exe, "-ni", "-g", str(GAIN), "-F", str(out), "-r", str(rate), str(sf), str(midi)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise CadenzaError(f"fluidsynth took longer than {TIMEOUT_S} s") from None
        except OSError as exc:
            raise AudioUnavailable(f"cannot run fluidsynth ({exc.strerror}): run `{INSTALL_HINT}`") from None
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            raise CadenzaError(f"fluidsynth failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
        with wave.open(str(out), "rb") as w:
            if w.getsampwidth() != 2:
                raise CadenzaError(f"fluidsynth wrote {8 * w.getsampwidth()}-bit audio; expected 16-bit")
            frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
    return frames.astype(np.float32) / 32768


def _finish(audio: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """Cut to ``seconds`` with a short fade-out, normalise the peak to -1 dBFS: int16 frames."""
    audio = np.asarray(audio, dtype=np.float64)
    n = min(len(audio), max(int(round(seconds * rate)), 1))
    cut = n < len(audio)
    audio = audio[:n].copy()
    fade = min(int(FADE_S * rate), n)
    if cut and fade > 0:
        audio[n - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    peak = np.abs(audio).max() if audio.size else 0.0
    if peak > 0:
        audio *= PEAK * 32767 / peak
    return np.clip(np.round(audio), -32768, 32767).astype("<i2")


def _write_wav(path: Path, frames: np.ndarray, rate: int, overwrite: bool = True) -> None:
    """Write int16 frames atomically (:func:`cadenza.files.atomic_path`)."""
    with atomic_path(path, ".wav", overwrite=overwrite) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(frames.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(frames.tobytes())
