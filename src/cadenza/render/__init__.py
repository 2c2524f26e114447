"""Pictures and audio of MIDI files: piano-roll PNGs and WAVs (cadenza's sampler or FluidSynth)."""

from __future__ import annotations

from pathlib import Path

from cadenza.errors import CadenzaError
from cadenza.render.audio import SYNTHS, AudioUnavailable, find_fluidsynth, find_soundfont, packaged_soundfont, render_wav
from cadenza.render.pianoroll import draw_pianoroll, is_quantised, pitch_name, render_pianoroll

FORMATS = ("png", "wav")


def render_outputs(midi_path, formats: set[str], soundfont=None, synth: str = "sampler",
                   overwrite: bool = True, axis: str = "auto") -> dict[str, Path | str]:
    """Write ``x.png`` and/or ``x.wav`` beside ``x.mid`` for each requested format.

    Returns ``{format: Path}``; when FluidSynth or a SoundFont is missing the ``"wav"`` entry
    is instead a one-line warning string (other errors propagate). ``"mid"`` in ``formats`` is
    accepted and ignored (the MIDI file already exists); ``axis`` is the piano roll's
    (:func:`render_pianoroll`). Each file is written atomically;
    ``overwrite=False`` refuses to replace an existing one.
    """
    midi_path = Path(midi_path)
    wanted = {f.lower().lstrip(".") for f in formats} - {"mid", "midi"}
    unknown = wanted - set(FORMATS)
    if unknown:
        raise CadenzaError(f"unknown output format(s) {', '.join(sorted(unknown))}: choose from mid, png, wav")
    out: dict[str, Path | str] = {}
    if "png" in wanted:
        out["png"] = render_pianoroll(midi_path, midi_path.with_suffix(".png"), overwrite=overwrite, axis=axis)
    if "wav" in wanted:
        try:
            out["wav"] = render_wav(midi_path, midi_path.with_suffix(".wav"), soundfont=soundfont, synth=synth,
                                    overwrite=overwrite)
        except AudioUnavailable as exc:
            out["wav"] = f"warning: no WAV for {midi_path.name}: {exc}"
    return out


__all__ = [
    "AudioUnavailable",
    "FORMATS",
    "SYNTHS",
    "draw_pianoroll",
    "find_fluidsynth",
    "find_soundfont",
    "is_quantised",
    "packaged_soundfont",
    "pitch_name",
    "render_outputs",
    "render_pianoroll",
    "render_wav",
]
