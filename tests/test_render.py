"""Piano-roll PNGs, WAVs (cadenza's sampler everywhere, FluidSynth where installed) and the
training-loss plot."""

from __future__ import annotations

import shutil
import struct
import wave

import numpy as np
import pytest
import symusic

from cadenza.errors import CadenzaError
from cadenza.training.plots import best_epoch, plot_loss
from cadenza.render import (
    AudioUnavailable,
    find_soundfont,
    is_quantised,
    packaged_soundfont,
    pitch_name,
    render_outputs,
    render_pianoroll,
    render_wav,
)
from cadenza.render import audio as audio_mod
from cadenza.render.sf2 import load_soundfont

TPQ = 480


def make_score(notes, tpq=TPQ):
    score = symusic.Score(tpq)
    track = symusic.Track("piano", 0, False)
    for t, d, p, v in notes:
        track.notes.append(symusic.Note(int(round(t * tpq)), int(round(d * tpq)), p, v))
    score.tracks.append(track)
    return score


def png_size(path):
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def melody(tmp_path):
    """8 quarter notes at the default 120 bpm: 4 seconds, 2 bars."""
    notes = [(i, 1, 60 + 2 * i, 40 + 10 * i) for i in range(8)]
    path = tmp_path / "melody.mid"
    make_score(notes).dump_midi(str(path))
    return path


@pytest.fixture
def no_fluidsynth(monkeypatch, tmp_path):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_pianoroll_png_size(melody, tmp_path):
    out = render_pianoroll(melody, tmp_path / "roll.png", title="test")
    assert out == tmp_path / "roll.png" and png_size(out) == (1600, 600)
    out2 = render_pianoroll(symusic.Score(str(melody)), tmp_path / "sub" / "roll2.png")
    assert png_size(out2) == (1600, 600)


def test_pianoroll_two_minutes_and_empty(tmp_path):
    rng = np.random.default_rng(1)
    notes = [(i * 0.5, 0.5, int(rng.integers(36, 96)), int(rng.integers(20, 127))) for i in range(480)]
    assert png_size(render_pianoroll(make_score(notes), tmp_path / "long.png")) == (1600, 600)
    assert png_size(render_pianoroll(symusic.Score(TPQ), tmp_path / "empty.png")) == (1600, 600)


def test_quantisation_rule():
    grid = np.array([0, 0.25, 0.5, 1 / 3, 2 / 3, 1.75, 3.0])
    assert is_quantised(grid)
    rng = np.random.default_rng(0)
    assert not is_quantised(rng.uniform(0, 100, size=500))
    assert is_quantised(np.zeros(0))
    assert pitch_name(60) == "C4" and pitch_name(36) == "C2" and pitch_name(61) == "C#4"


def test_bad_midi_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(CadenzaError) as err:
        render_pianoroll(bad, tmp_path / "bad.png")
    assert "\n" not in str(err.value)
    with pytest.raises(CadenzaError):
        render_pianoroll(tmp_path / "missing.mid", tmp_path / "x.png")


def read_wav(path):
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
        return w.getframerate(), w.getnchannels(), frames.reshape(-1, w.getnchannels())


def test_render_wav_duration_and_loudness(melody, tmp_path, no_fluidsynth):
    """The default synthesizer needs no program: only pip packages (and the pretty_midi font)."""
    out = render_wav(melody, tmp_path / "melody.wav", sample_rate=22050)
    rate, channels, frames = read_wav(out)
    assert rate == 22050 and channels == 2
    assert abs(len(frames) / rate - 4.0) <= 1.0
    assert np.sqrt(np.mean(frames**2)) > 0.01
    assert np.abs(frames).max() == pytest.approx(10 ** (-1 / 20), abs=1e-3)  # -1 dBFS


@pytest.mark.parametrize("pitch", [45, 69, 84])
def test_sampler_plays_the_right_pitch(tmp_path, pitch):
    out = render_wav(make_score([(0, 2, pitch, 100)]), tmp_path / "a.wav")
    rate, _, frames = read_wav(out)
    mono = frames[:rate, 0]
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    peak = np.fft.rfftfreq(len(mono), 1 / rate)[spectrum.argmax()]
    assert peak == pytest.approx(440 * 2 ** ((pitch - 69) / 12), rel=0.01)


def test_packaged_soundfont_is_the_default(monkeypatch):
    monkeypatch.delenv("CADENZA_SOUNDFONT", raising=False)
    font = packaged_soundfont()
    assert font is not None and font.name == "TimGM6mb.sf2" and "pretty_midi" in str(font)
    assert find_soundfont() == font
    assert (0, 0) in load_soundfont(font).presets


def test_not_a_soundfont(melody, tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF\0\0\0\0junk" + bytes(100))
    with pytest.raises(CadenzaError) as err:
        render_wav(melody, tmp_path / "x.wav", soundfont=bad)
    assert "\n" not in str(err.value) and "SoundFont" in str(err.value)


def test_render_outputs_both(melody, no_fluidsynth):
    out = render_outputs(melody, {"png", "wav", "mid"})
    assert out["png"] == melody.with_suffix(".png") and out["png"].is_file()
    assert out["wav"] == melody.with_suffix(".wav") and out["wav"].stat().st_size > 1000


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="FluidSynth not installed (the optional synth)")
def test_fluidsynth_option(melody, tmp_path):
    out = render_wav(melody, tmp_path / "fs.wav", sample_rate=22050, synth="fluidsynth")
    rate, _, frames = read_wav(out)
    assert rate == 22050 and abs(len(frames) / rate - 4.0) <= 1.0 and np.sqrt(np.mean(frames**2)) > 0.01


def test_missing_fluidsynth_is_one_line(melody, tmp_path, no_fluidsynth):
    with pytest.raises(AudioUnavailable) as err:
        render_wav(melody, tmp_path / "x.wav", synth="fluidsynth")
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install fluidsynth" in msg
    assert isinstance(err.value, CadenzaError)
    assert not (tmp_path / "x.wav").exists()
    with pytest.raises(CadenzaError):
        render_wav(melody, tmp_path / "x.wav", synth="timidity")


def test_render_outputs_warns_without_a_soundfont(melody, monkeypatch):
    monkeypatch.delenv("CADENZA_SOUNDFONT", raising=False)
    monkeypatch.setattr(audio_mod, "packaged_soundfont", lambda: None)
    monkeypatch.setattr(audio_mod, "SOUNDFONT_CANDIDATES", ())
    out = render_outputs(melody, {"png", "wav"})
    assert png_size(out["png"]) == (1600, 600)
    assert isinstance(out["wav"], str) and "\n" not in out["wav"] and "soundfont" in out["wav"].lower()
    assert not melody.with_suffix(".wav").exists()
    with pytest.raises(CadenzaError):
        render_outputs(melody, {"mp3"})


def test_cli_render_wav_without_fluidsynth(melody, tmp_path, no_fluidsynth, capsys):
    from cadenza.cli import main

    assert main(["render", str(melody), "--wav", str(tmp_path / "x.wav")]) == 0
    rate, _, frames = read_wav(tmp_path / "x.wav")
    assert len(frames) / rate > 3 and np.abs(frames).max() > 0.5


def test_missing_soundfont(monkeypatch, tmp_path):
    monkeypatch.delenv("CADENZA_SOUNDFONT", raising=False)
    monkeypatch.setattr(audio_mod, "packaged_soundfont", lambda: None)
    monkeypatch.setattr(audio_mod, "SOUNDFONT_CANDIDATES", (str(tmp_path / "none" / "*.sf2"),))
    with pytest.raises(AudioUnavailable) as err:
        find_soundfont()
    assert "\n" not in str(err.value) and "--soundfont" in str(err.value)
    sf = tmp_path / "my.sf2"
    sf.write_bytes(b"x")
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(sf))
    assert find_soundfont() == sf
    assert find_soundfont(sf) == sf
    with pytest.raises(CadenzaError) as err:
        find_soundfont(tmp_path / "nope.sf2")
    assert not isinstance(err.value, AudioUnavailable)  # an explicit bad path is a usage error


def test_plot_loss(tmp_path):
    rows = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 2.0 + (e - 3) ** 2 / 10} for e in range(1, 8)]
    rows[1]["val_loss"] = None
    out = plot_loss(rows, tmp_path / "loss.png")
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    assert best_epoch(rows)[:2] == (3, 2.0) and best_epoch(rows)[2] == "validation"
    no_val = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": float("nan")} for e in range(1, 4)]
    assert best_epoch(no_val) == (3, pytest.approx(1 / 3), "training")
    assert plot_loss(no_val, tmp_path / "loss2.png").is_file()
    assert plot_loss([], tmp_path / "loss3.png").is_file()
