"""Music metrics on hand-built pieces with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import symusic

from cadenza.evaluate.compare import compare_sets, inter_distances, intra_distances, kde, make_grid
from cadenza.evaluate.features import NOTE_LENGTH_CLASSES, note_length_classes, piece_features
from cadenza.data.scores import bar_starts
from cadenza.evaluate.sanity import longest_run, sanity_measures

TPQ = 480


def make_score(notes, tpq=TPQ, time_signature=None, drums=()):
    """notes: (onset_beats, duration_beats, pitch[, velocity]) tuples."""
    score = symusic.Score(tpq)
    if time_signature:
        score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    track = symusic.Track("piano", 0, False)
    for n in notes:
        vel = n[3] if len(n) > 3 else 80
        track.notes.append(symusic.Note(int(round(n[0] * tpq)), int(round(n[1] * tpq)), n[2], vel))
    score.tracks.append(track)
    if drums:
        drum = symusic.Track("drums", 0, True)
        for t, d, p in drums:
            drum.notes.append(symusic.Note(int(t * tpq), int(d * tpq), p, 100))
        score.tracks.append(drum)
    return score


C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]
SCALE = [(i, 1, p) for i, p in enumerate(C_MAJOR)]
REPEATED = [(i, 1, 60) for i in range(32)]  # 8 bars of quarter-note C4
CHORDS = [(4 * k, 4, p) for k, chord in enumerate([(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]) for p in chord]


def test_c_major_scale_features():
    f = piece_features(make_score(SCALE))
    assert f["pitch_count"] == 8
    assert f["pitch_range"] == 12
    assert f["note_count"] == 8
    assert f["avg_pitch_interval"] == pytest.approx(12 / 7)
    assert f["avg_ioi"] == pytest.approx(1.0)
    pch = f["pitch_class_histogram"]
    assert pch.shape == (12,) and pch.sum() == pytest.approx(1.0)
    assert np.count_nonzero(pch) == 7
    assert pch[0] == pytest.approx(2 / 8) and pch[2] == pytest.approx(1 / 8)
    pctm = f["pitch_class_transition"]
    assert pctm.shape == (12, 12) and pctm.sum() == pytest.approx(1.0)
    for a, b in zip(C_MAJOR[:-1], C_MAJOR[1:]):
        assert pctm[a % 12, b % 12] == pytest.approx(1 / 7)
    nlh = f["note_length_histogram"]
    assert nlh[[name for name, _ in NOTE_LENGTH_CLASSES].index("quarter")] == 1.0


def test_c_major_scale_sanity():
    m = sanity_measures(make_score(SCALE))
    assert m["scale_consistency"] == 1.0
    assert m["best_scale"] == "C major"
    assert m["polyphony"] == 1.0
    assert m["longest_repeat_run"] == 1
    assert m["empty_bar_rate"] == 0.0
    assert math.isnan(m["repeated_4bar_share"])  # only two bars


def test_scale_consistency_with_outside_notes():
    m = sanity_measures(make_score([(i, 1, p) for i, p in enumerate([60, 61, 62, 63])]))
    assert m["scale_consistency"] == pytest.approx(0.75)  # no 7-note scale holds C, C#, D and D#


def test_repeated_note():
    score = make_score(REPEATED)
    f = piece_features(score)
    assert f["pitch_count"] == 1 and f["pitch_range"] == 0 and f["avg_pitch_interval"] == 0
    assert f["pitch_class_histogram"][0] == 1.0
    assert f["pitch_class_transition"][0, 0] == 1.0
    m = sanity_measures(score)
    assert m["longest_repeat_run"] == 32
    assert m["repeated_4bar_share"] == pytest.approx(4 / 5)  # 5 windows, all but the first seen before
    assert m["polyphony"] == 1.0


def test_chord_progression():
    score = make_score(CHORDS)
    f = piece_features(score)
    # merged order C E G | F A C | G B D | C E G -> 11 transitions between successive notes
    expected = {(0, 4): 2, (4, 7): 2, (7, 5): 1, (5, 9): 1, (9, 0): 1, (0, 7): 1, (7, 11): 1, (11, 2): 1, (2, 0): 1}
    m = np.zeros((12, 12))
    for (a, b), c in expected.items():
        m[a, b] = c / 11
    np.testing.assert_allclose(f["pitch_class_transition"], m)
    assert f["avg_ioi"] == pytest.approx(4.0)
    assert f["note_length_histogram"][0] == 1.0  # whole notes
    s = sanity_measures(score)
    assert s["polyphony"] == 3.0
    assert s["longest_repeat_run"] == 1
    assert s["scale_consistency"] == 1.0
    assert s["repeated_4bar_share"] == 0.0


def test_four_note_chords_and_sustain():
    # a held bass note under three chords: 4 notes sound at every onset
    notes = [(0, 12, 48)] + [(4 * k, 4, p) for k in range(3) for p in (60, 64, 67)]
    assert sanity_measures(make_score(notes))["polyphony"] == 4.0


def test_empty_bars_and_runs():
    notes = [(0, 1, 60), (12, 1, 62)]  # bars 1 and 4 of 4/4: bars 2 and 3 are empty
    assert sanity_measures(make_score(notes))["empty_bar_rate"] == pytest.approx(0.5)
    assert longest_run([1, 2, 2, 2, 3, 3]) == 3
    assert longest_run([]) == 0
    assert longest_run("abbc") == 2


def test_chord_repeats_count_as_one_event():
    notes = [(k, 1, p) for k in range(5) for p in (60, 64, 67)] + [(5, 1, 62)]
    assert sanity_measures(make_score(notes))["longest_repeat_run"] == 5


def test_time_signatures_set_the_bars():
    score = make_score([(i, 1, 60 + i % 3) for i in range(24)], time_signature=(3, 4))
    np.testing.assert_allclose(bar_starts(score), np.arange(0, 24, 3))
    m = sanity_measures(score)
    assert m["repeated_4bar_share"] == pytest.approx(4 / 5)  # 8 bars of 3/4, same bar each time
    # in 4/4 the 3-beat pattern shifts against the bar: windows repeat with period 3 bars
    assert sanity_measures(make_score([(i, 1, 60 + i % 3) for i in range(24)]))["repeated_4bar_share"] == 0.0


def test_note_length_classes():
    values = [v for _, v in NOTE_LENGTH_CLASSES]
    np.testing.assert_array_equal(note_length_classes(np.array(values)), np.arange(12))
    assert note_length_classes(np.array([10.0, 0.05]))[0] == 0  # longer than whole -> whole
    assert note_length_classes(np.array([0.05]))[0] == 4  # shorter than 16th -> 16th


def test_drums_ignored_and_resolution_independent():
    base = piece_features(make_score(SCALE))
    other = piece_features(make_score(SCALE, tpq=96, drums=[(0, 1, 36), (1, 1, 38)]))
    for key in base:
        np.testing.assert_allclose(base[key], other[key])


def test_empty_piece():
    score = symusic.Score(TPQ)
    f = piece_features(score)
    assert f["note_count"] == 0 and f["pitch_class_histogram"].sum() == 0
    m = sanity_measures(score)
    assert math.isnan(m["scale_consistency"]) and m["longest_repeat_run"] == 0


def test_distances_and_kde():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    d = intra_distances(x)
    np.testing.assert_allclose(sorted(d), [1.0, np.sqrt(18), 5.0])
    assert inter_distances(x, x[:2]).shape == (6,)
    assert len(intra_distances(x[:1])) == 0
    grid = make_grid(d)
    dens = kde(d, grid)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    assert trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    # constant data must not break scipy's KDE
    const = kde(np.zeros(5), make_grid(np.zeros(5)))
    assert np.all(np.isfinite(const)) and const.max() > 0


def _random_piece(rng, spread):
    n = 40
    pitches = rng.integers(60 - spread, 61 + spread, size=n)
    return make_score([(i * 0.5, 0.5, int(p)) for i, p in enumerate(pitches)])


def test_compare_separates_different_sets():
    rng = np.random.default_rng(0)
    narrow = [_random_piece(rng, 3) for _ in range(6)]
    narrow2 = [_random_piece(rng, 3) for _ in range(6)]
    wide = [_random_piece(rng, 20) for _ in range(6)]
    same = compare_sets(narrow2, narrow)
    diff = compare_sets(wide, narrow)
    for key in ("pitch_range", "avg_pitch_interval", "pitch_count"):
        assert 0.0 <= diff[key]["oa"] <= 1.0 and diff[key]["kl"] >= 0.0
        assert same[key]["oa"] > diff[key]["oa"]
        assert same[key]["kl"] < diff[key]["kl"]
    assert len(same["pitch_range"]["intra_real"]) == 15 and len(same["pitch_range"]["inter"]) == 36
    assert same["note_count"]["generated"]["mean"] == 40
    assert same["pitch_class_histogram"]["real"]["mean"].shape == (12,)


def test_compare_degenerate_sets():
    one = compare_sets([make_score(SCALE)], [make_score(SCALE), make_score(REPEATED)])
    assert math.isnan(one["pitch_range"]["intra_generated_mean"])
    assert np.isfinite(one["pitch_range"]["oa"])
    none = compare_sets([make_score(SCALE)], [make_score(SCALE)])
    assert math.isnan(none["pitch_range"]["oa"])
