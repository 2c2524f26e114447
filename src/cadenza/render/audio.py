"""WAV synthesis with the FluidSynth command-line program and a General MIDI SoundFont."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import symusic

from cadenza.errors import CadenzaError
from cadenza.evaluate.notes import ScoreLike, load_score

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


def render_wav(midi_path_or_score: ScoreLike, wav_path, soundfont=None, sample_rate: int = 44100) -> Path:
    """Synthesise a MIDI file or Score to a WAV file with FluidSynth; returns the WAV path.

    Runs ``fluidsynth -ni -g GAIN -F WAV -r RATE SOUNDFONT MIDI``. Raises AudioUnavailable
    when FluidSynth or a SoundFont is missing and CadenzaError when FluidSynth fails.
    """
    exe = find_fluidsynth()
    sf = find_soundfont(soundfont)
    wav_path = Path(wav_path)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cadenza-wav-") as tmp:
        if isinstance(midi_path_or_score, symusic.Score):
            midi = Path(tmp) / "in.mid"
            midi_path_or_score.dump_midi(str(midi))
        else:
            midi = Path(midi_path_or_score)
            load_score(midi)  # one-line error for a missing or unreadable file
        cmd = [exe, "-ni", "-g", str(GAIN), "-F", str(wav_path), "-r", str(int(sample_rate)), str(sf), str(midi)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise CadenzaError(f"fluidsynth took longer than {TIMEOUT_S} s on {midi}") from None
        except OSError as exc:
            raise AudioUnavailable(f"cannot run fluidsynth ({exc.strerror}): run `{INSTALL_HINT}`") from None
    if proc.returncode != 0 or not wav_path.is_file() or wav_path.stat().st_size <= 44:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise CadenzaError(f"fluidsynth failed to write {wav_path}: {detail}")
    return wav_path
