"""WAV synthesis with the FluidSynth command-line program and a General MIDI SoundFont."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import symusic

from cadenza.errors import CadenzaError
from cadenza.evaluate.notes import ScoreLike, load_score
from cadenza.files import atomic_path

INSTALL_HINT = "apt-get install fluidsynth fluid-soundfont-gm"
#: searched in this order after --soundfont and $CADENZA_SOUNDFONT
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
    for pattern in SOUNDFONT_CANDIDATES:
        for hit in sorted(glob.glob(pattern)):
            if Path(hit).is_file():
                return Path(hit)
    raise AudioUnavailable(
        f"no General MIDI SoundFont found in /usr/share/sounds/sf2 or /usr/share/soundfonts: "
        f"run `{INSTALL_HINT}` or pass --soundfont PATH"
    )


def render_wav(midi_path_or_score: ScoreLike, wav_path, soundfont=None, sample_rate: int = 44100,
               overwrite: bool = True) -> Path:
    """Synthesise a MIDI file or Score to a WAV file with FluidSynth; returns the WAV path.

    Runs ``fluidsynth -ni -g GAIN -F WAV -r RATE SOUNDFONT MIDI``, then keeps TAIL_S seconds
    after the end of the music (fading out) and normalises the peak to -1 dBFS. Raises
    AudioUnavailable when FluidSynth or a SoundFont is missing and CadenzaError when FluidSynth
    fails. The WAV is made in a temporary folder and moved into place atomically;
    ``overwrite=False`` refuses to replace an existing file.
    """
    exe = find_fluidsynth()
    sf = find_soundfont(soundfont)
    wav_path = Path(os.path.abspath(wav_path))  # fluidsynth runs in a temporary folder; a link is not followed
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cadenza-wav-") as tmp:
        if isinstance(midi_path_or_score, symusic.Score):
            score = midi_path_or_score
            midi = Path(tmp) / "in.mid"
            score.dump_midi(str(midi))
        else:
            midi = Path(midi_path_or_score).resolve()
            score = load_score(midi)  # one-line error for a missing or unreadable file
        made = Path(tmp) / "out.wav"
        cmd = [exe, "-ni", "-g", str(GAIN), "-F", str(made), "-r", str(int(sample_rate)), str(sf), str(midi)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise CadenzaError(f"fluidsynth took longer than {TIMEOUT_S} s on {midi}") from None
        except OSError as exc:
            raise AudioUnavailable(f"cannot run fluidsynth ({exc.strerror}): run `{INSTALL_HINT}`") from None
        if proc.returncode != 0 or not made.is_file() or made.stat().st_size <= 44:
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            detail = lines[-1] if lines else f"exit code {proc.returncode}"
            raise CadenzaError(f"fluidsynth failed to write {wav_path}: {detail}")
        _finish_wav(made, float(score.to("second").end()) + TAIL_S)
        with atomic_path(wav_path, ".wav", overwrite=overwrite) as out:
            shutil.copyfile(made, out)
    return wav_path


def _finish_wav(path: Path, seconds: float) -> None:
    """Cut the WAV to ``seconds`` with a short fade-out and normalise its peak to -1 dBFS.

    Only 16-bit PCM (FluidSynth's default) is touched; other formats are left as written.
    """
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        if params.sampwidth != 2:
            return
        frames = w.readframes(params.nframes)
    audio = np.frombuffer(frames, dtype="<i2").reshape(-1, params.nchannels).astype(np.float64)
    n = min(len(audio), max(int(round(seconds * params.framerate)), 1))
    audio = audio[:n]
    fade = min(int(FADE_S * params.framerate), n)
    if n < params.nframes and fade > 0:
        audio[n - fade :] *= np.linspace(1.0, 0.0, fade)[:, None]
    peak = np.abs(audio).max() if audio.size else 0.0
    if peak > 0:
        audio *= PEAK * 32767 / peak
    out = np.clip(np.round(audio), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(params.nchannels)
        w.setsampwidth(2)
        w.setframerate(params.framerate)
        w.writeframes(out.tobytes())
