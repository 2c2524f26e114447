"""Per-piece features of Yang & Lerch (2020), "On the evaluation of generative models in music".

Every feature is computed from one symusic Score with all non-drum tracks merged into one note
list, sorted by onset then pitch. Times are in beats (quarter notes).

=============================  =====================================================================
key                            definition
=============================  =====================================================================
``pitch_count``                number of distinct MIDI pitches (PC)
``pitch_class_histogram``      12 bins C..B, share of notes per pitch class; sums to 1 (PCH)
``pitch_class_transition``     12x12 counts of pitch class i followed by j over successive notes of
                               the merged list (so chord notes follow each other low to high),
                               divided by the total: the matrix sums to 1 (PCTM)
``pitch_range``                highest minus lowest pitch in semitones (PR)
``avg_pitch_interval``         mean absolute interval in semitones between successive notes (PI)
``note_count``                 number of notes (NC)
``avg_ioi``                    mean inter-onset interval in beats between successive *distinct*
                               onset times (notes of a chord share one onset) (IOI)
``note_length_histogram``      12 classes of :data:`NOTE_LENGTH_CLASSES`, share of notes; sums to 1
                               (NLH)
``note_length_transition``     12x12 transitions between the length classes of successive notes,
                               sums to 1 (NLTM)
=============================  =====================================================================

Note-length classes (beats): whole 4, half 2, quarter 1, 8th 1/2, 16th 1/4, dotted half 3,
dotted quarter 3/2, dotted 8th 3/4, dotted 16th 3/8, half triplet 4/3, quarter triplet 2/3,
8th triplet 1/3 - the paper's 12 classes. A note goes to the class nearest in log-duration, so
anything longer than a whole note counts as whole and anything shorter than a 16th as a 16th.

An empty piece gives zeros everywhere (histograms are then all zero, not normalised).
"""

from __future__ import annotations

import numpy as np

from cadenza.data.scores import ScoreLike, load_score, merged_notes

NOTE_LENGTH_CLASSES: tuple[tuple[str, float], ...] = (
    ("whole", 4.0),
    ("half", 2.0),
    ("quarter", 1.0),
    ("8th", 0.5),
    ("16th", 0.25),
    ("dotted half", 3.0),
    ("dotted quarter", 1.5),
    ("dotted 8th", 0.75),
    ("dotted 16th", 0.375),
    ("half triplet", 4.0 / 3.0),
    ("quarter triplet", 2.0 / 3.0),
    ("8th triplet", 1.0 / 3.0),
)

#: feature key -> (short label, is_vector)
FEATURES: dict[str, tuple[str, bool]] = {
    "pitch_count": ("pitch count", False),
    "pitch_class_histogram": ("pitch-class histogram", True),
    "pitch_class_transition": ("pitch-class transition matrix", True),
    "pitch_range": ("pitch range", False),
    "avg_pitch_interval": ("average pitch interval", False),
    "note_count": ("note count", False),
    "avg_ioi": ("average inter-onset interval (beats)", False),
    "note_length_histogram": ("note-length histogram", True),
    "note_length_transition": ("note-length transition matrix", True),
}

PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _normalise(a: np.ndarray) -> np.ndarray:
    total = a.sum()
    return a / total if total > 0 else a


def _transitions(labels: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n))
    if len(labels) >= 2:
        np.add.at(m, (labels[:-1], labels[1:]), 1.0)
    return _normalise(m)


def note_length_classes(durations_beats: np.ndarray) -> np.ndarray:
    """Index into :data:`NOTE_LENGTH_CLASSES` of each duration (nearest in log-duration)."""
    d = np.asarray(durations_beats, dtype=np.float64)
    ref = np.log2([v for _, v in NOTE_LENGTH_CLASSES])
    logd = np.log2(np.clip(d, 1e-3, None))
    return np.argmin(np.abs(logd[:, None] - ref[None, :]), axis=1)


def piece_features(score: ScoreLike) -> dict[str, float | np.ndarray]:
    """All features of one piece (see the module docstring)."""
    notes = merged_notes(load_score(score))
    pitch = notes["pitch"].astype(np.int64)
    onset = notes["time"]
    n = len(pitch)
    pc = pitch % 12
    if n:
        onsets = np.unique(np.round(onset, 6))
        ioi = float(np.diff(onsets).mean()) if len(onsets) > 1 else 0.0
        interval = float(np.abs(np.diff(pitch)).mean()) if n > 1 else 0.0
        length_cls = note_length_classes(notes["duration"])
    else:
        ioi = interval = 0.0
        length_cls = np.zeros(0, dtype=np.int64)
    return {
        "pitch_count": float(len(np.unique(pitch))),
        "pitch_class_histogram": _normalise(np.bincount(pc, minlength=12).astype(np.float64)),
        "pitch_class_transition": _transitions(pc, 12),
        "pitch_range": float(pitch.max() - pitch.min()) if n else 0.0,
        "avg_pitch_interval": interval,
        "note_count": float(n),
        "avg_ioi": ioi,
        "note_length_histogram": _normalise(
            np.bincount(length_cls, minlength=len(NOTE_LENGTH_CLASSES)).astype(np.float64)
        ),
        "note_length_transition": _transitions(length_cls, len(NOTE_LENGTH_CLASSES)),
    }


def set_features(scores: list[ScoreLike]) -> list[dict[str, float | np.ndarray]]:
    """:func:`piece_features` of each piece."""
    return [piece_features(s) for s in scores]


__all__ = [
    "FEATURES",
    "NOTE_LENGTH_CLASSES",
    "PITCH_NAMES",
    "note_length_classes",
    "piece_features",
    "set_features",
]
