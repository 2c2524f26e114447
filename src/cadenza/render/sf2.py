"""A small SoundFont 2 sampler in numpy: WAV audio with pip packages alone.

It reads a ``.sf2`` file (RIFF: 16-bit samples, presets -> instruments -> sample zones) and
plays each note of a Score with the zone its preset picks for that key and velocity: the
sample resampled to the note's pitch (root key, coarse/fine tune, scale tuning), looped as
the zone says, under the SoundFont volume envelope (attack, hold, decay to sustain, release)
with the zone's attenuation and pan. No filters, modulators, chorus or reverb: what a piano
needs, not a full synthesizer (FluidSynth remains an option for that).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from symusic import Score

from cadenza.errors import CadenzaError

# generator numbers (SoundFont 2.04, section 8.1.2)
START, END, LOOP_START, LOOP_END, START_COARSE = 0, 1, 2, 3, 4
END_COARSE, LOOP_START_COARSE, LOOP_END_COARSE = 12, 45, 50
PAN, ATTACK, HOLD, DECAY, SUSTAIN, RELEASE = 17, 34, 35, 36, 37, 38
INSTRUMENT, KEY_RANGE, VEL_RANGE, ATTENUATION = 41, 43, 44, 48
COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES, SCALE_TUNING, ROOT_KEY = 51, 52, 53, 54, 56, 58
DEFAULTS = {SUSTAIN: 0, ATTACK: -12000, HOLD: -12000, DECAY: -12000, RELEASE: -12000, SCALE_TUNING: 100, ROOT_KEY: -1}
#: preset-level generators add to the instrument's; ranges and sample choices do not
ADDITIVE = {PAN, ATTACK, HOLD, DECAY, SUSTAIN, RELEASE, ATTENUATION, COARSE_TUNE, FINE_TUNE}
MAX_RELEASE_S = 2.0
FULL = (0, 127)


@dataclass
class Zone:
    """One sample zone of an instrument, with the generators in force for it."""
    keys: tuple[int, int]
    vels: tuple[int, int]
    gens: dict[int, int]
    sample: int


@dataclass
class SoundFont:
    path: Path
    data: np.ndarray                  # every sample, float32 in [-1, 1)
    samples: list[tuple]              # (start, end, loop_start, loop_end, rate, root, correction)
    presets: dict[tuple[int, int], list[Zone]]  # (bank, program) -> zones, preset generators merged in

    def zones(self, bank: int, program: int, key: int, vel: int) -> list[Zone]:
        found = self.presets.get((bank, program)) or self.presets.get((0, program)) \
            or self.presets.get((0, 0)) or next(iter(self.presets.values()))
        return [z for z in found if z.keys[0] <= key <= z.keys[1] and z.vels[0] <= vel <= z.vels[1]]


def _chunks(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    """RIFF sub-chunks between ``start`` and ``end``: name -> (offset, size); LIST chunks by type."""
    out, pos = {}, start
    while pos + 8 <= end:
        name, size = data[pos:pos + 4].decode("latin-1"), struct.unpack_from("<I", data, pos + 4)[0]
        if name == "LIST":
            out[data[pos + 8:pos + 12].decode("latin-1")] = (pos + 12, size - 4)
        else:
            out[name] = (pos + 8, size)
        pos += 8 + size + (size & 1)
    return out


def _records(data: bytes, chunk: tuple[int, int], fmt: str) -> list[tuple]:
    offset, size = chunk
    return list(struct.iter_unpack(fmt, data[offset:offset + size - size % struct.calcsize(fmt)]))


def _zones(bags: list[tuple], gens: list[tuple], first: int, last: int, terminal: int) -> tuple[dict, list[dict]]:
    """The generators of bags first..last-1: (the global zone's, [each other zone's])."""
    glob, zones = {}, []
    for b in range(first, last):
        zone = {}
        for oper, amount in gens[bags[b][0]:bags[b + 1][0]]:
            zone[oper] = amount
        if terminal in zone:
            zones.append(zone)
        elif b == first:
            glob = zone
    return glob, zones


def _range(gens: dict, oper: int) -> tuple[int, int]:
    if oper not in gens:
        return FULL
    raw = struct.pack("<h", gens[oper])
    return raw[0], raw[1]


def _intersect(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return max(a[0], b[0]), min(a[1], b[1])


@lru_cache(maxsize=4)
def load_soundfont(path: Path) -> SoundFont:
    """Parse a SoundFont 2 file (cached); a file that is not one is a CadenzaError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CadenzaError(f"cannot read SoundFont {path}: {exc.strerror}") from None
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise CadenzaError(f"{path} is not a SoundFont 2 file")
    try:
        return _parse(Path(path), data)
    except (KeyError, IndexError, struct.error, ValueError) as exc:
        raise CadenzaError(f"cannot read SoundFont {path}: damaged or unsupported ({exc})") from None


def _parse(path: Path, data: bytes) -> SoundFont:
    top = _chunks(data, 12, len(data))
    sdta, pdta = _chunks(data, *_span(top["sdta"])), _chunks(data, *_span(top["pdta"]))
    if "smpl" not in sdta:
        raise CadenzaError(f"{path} has no 16-bit samples (an .sf3 font needs --synth fluidsynth)")
    off, size = sdta["smpl"]
    wave = np.frombuffer(data, dtype="<i2", count=size // 2, offset=off).astype(np.float32) / 32768
    gen_fmt = "<Hh"
    phdr, pbag, pgen = (_records(data, pdta[n], f) for n, f in (("phdr", "<20sHHHIII"), ("pbag", "<HH"), ("pgen", gen_fmt)))
    inst, ibag, igen = (_records(data, pdta[n], f) for n, f in (("inst", "<20sH"), ("ibag", "<HH"), ("igen", gen_fmt)))
    shdr = [(s, e, ls, le, rate, root, corr) for _, s, e, ls, le, rate, root, corr, _, _ in
            _records(data, pdta["shdr"], "<20sIIIIIBbHH")]
    instruments = []
    for k in range(len(inst) - 1):
        glob, zones = _zones(ibag, igen, inst[k][1], inst[k + 1][1], SAMPLE_ID)
        instruments.append([{**DEFAULTS, **glob, **z} for z in zones])
    presets: dict[tuple[int, int], list[Zone]] = {}
    for k in range(len(phdr) - 1):
        _, program, bank, bag = phdr[k][:4]
        glob, zones = _zones(pbag, pgen, bag, phdr[k + 1][3], INSTRUMENT)
        out = []
        for pz in zones:
            pz = {**glob, **pz}
            for iz in instruments[pz[INSTRUMENT]]:
                gens = dict(iz)
                for oper in ADDITIVE & pz.keys():
                    gens[oper] = gens.get(oper, 0) + pz[oper]
                out.append(Zone(_intersect(_range(pz, KEY_RANGE), _range(iz, KEY_RANGE)),
                                _intersect(_range(pz, VEL_RANGE), _range(iz, VEL_RANGE)), gens, iz[SAMPLE_ID]))
        presets.setdefault((bank, program), out)
    if not presets:
        raise CadenzaError(f"{path} holds no presets")
    return SoundFont(path, wave, shdr, presets)


def _span(chunk: tuple[int, int]) -> tuple[int, int]:
    return chunk[0], chunk[0] + chunk[1]


def _seconds(timecents: int) -> float:
    return 2.0 ** (timecents / 1200)


def _envelope(g: dict, held: int, total: int, rate: int) -> np.ndarray:
    """Amplitude of the volume envelope over ``total`` samples, the key held for ``held``."""
    t = np.arange(total, dtype=np.float32) / np.float32(rate)
    attack, hold, decay = _seconds(g[ATTACK]), _seconds(g[HOLD]), _seconds(g[DECAY])
    sustain_db = min(max(g.get(SUSTAIN, 0), 0), 1440) / 10
    # decay: 100 dB in ``decay`` seconds, down to the sustain level (SoundFont 2.04, 8.1.3)
    db = -np.minimum(np.maximum(t - attack - hold, 0) * 100 / decay, sustain_db)
    off = held / rate
    db_off = -min(max(off - attack - hold, 0) * 100 / decay, sustain_db)
    release = np.maximum(t - off, 0) * 100 / _seconds(g[RELEASE])
    db = np.where(t < off, db, db_off - release)
    amp = np.power(np.float32(10), db / np.float32(20))
    return amp * np.clip(t / max(attack, 1e-4), 0, 1)


def _play(font: SoundFont, z: Zone, key: int, held: int, rate: int) -> np.ndarray:
    """One zone of one note: the resampled, looped and enveloped sample (mono)."""
    g = z.gens
    start, end, loop_start, loop_end, sample_rate, root, correction = font.samples[z.sample]
    start += g.get(START, 0) + 32768 * g.get(START_COARSE, 0)
    end += g.get(END, 0) + 32768 * g.get(END_COARSE, 0)
    loop_start += g.get(LOOP_START, 0) + 32768 * g.get(LOOP_START_COARSE, 0)
    loop_end += g.get(LOOP_END, 0) + 32768 * g.get(LOOP_END_COARSE, 0)
    root = g[ROOT_KEY] if 0 <= g[ROOT_KEY] <= 127 else root
    cents = (key - root) * g[SCALE_TUNING] + 100 * g.get(COARSE_TUNE, 0) + g.get(FINE_TUNE, 0) + correction
    step = 2.0 ** (cents / 1200) * sample_rate / rate
    release = min(_seconds(g[RELEASE]), MAX_RELEASE_S)
    total = held + int(release * rate)
    pos = np.arange(total) * step
    looped = g.get(SAMPLE_MODES, 0) & 1 and start <= loop_start < loop_end <= end
    if looped:
        first, length = loop_start - start, loop_end - loop_start
        pos = np.where(pos >= first + length, first + np.mod(pos - first, length), pos)
    else:
        pos = pos[pos < end - start - 1]
    idx = pos.astype(np.int64)
    frac = (pos - idx).astype(np.float32)
    data = font.data[start:end + 1]
    out = data[idx] * (1 - frac) + data[np.minimum(idx + 1, len(data) - 1)] * frac
    return out * _envelope(g, held, len(out), rate) * 10 ** (-0.4 * g.get(ATTENUATION, 0) / 200)


def synthesize(score: Score, soundfont: Path, rate: int = 44100) -> np.ndarray:
    """Stereo float32 audio (frames x 2) of every note of ``score`` with the font's presets."""
    font = load_soundfont(Path(soundfont))
    score = score.to("second")
    end = max([float(score.end()), 0.0]) + MAX_RELEASE_S
    audio = np.zeros((int(end * rate) + 1, 2), dtype=np.float32)
    for track in score.tracks:
        bank = 128 if track.is_drum else 0
        notes = track.notes.numpy()
        for t0, dur, key, vel in zip(notes["time"], notes["duration"], notes["pitch"], notes["velocity"]):
            a, held = int(t0 * rate), max(int(dur * rate), 1)
            for z in font.zones(bank, int(track.program), int(key), int(vel)):
                sound = _play(font, z, int(key), held, rate) * (vel / 127) ** 2
                sound = sound[:len(audio) - a]
                pan = (min(max(z.gens.get(PAN, 0), -500), 500) + 500) / 1000 * np.pi / 2
                audio[a:a + len(sound), 0] += sound * np.cos(pan)
                audio[a:a + len(sound), 1] += sound * np.sin(pan)
    return audio
