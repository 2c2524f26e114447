"""Structure measures on pieces built for the purpose (4/4 bars of 1920 ticks unless said)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import symusic

from cadenza.evaluate.structure import (
    bar_starts,
    compare_structure,
    excerpt,
    self_similarity,
    structure_measures,
)

TPQ = 480
BAR = 4 * TPQ
QUARTERS = [(0, 60), (1, 64), (2, 67), (3, 72)]  # (beat, pitch): an arpeggio in quarter notes


def make_score(bars, time_signatures=(), tempos=(), velocity=80):
    """``bars``: one list of (beat in bar, pitch) per 4/4 bar; a note lasts half a beat."""
    score = symusic.Score(TPQ)
    track = symusic.Track("piano", 0, False)
    for b, notes in enumerate(bars):
        for beat, pitch in notes:
            track.notes.append(symusic.Note(b * BAR + int(beat * TPQ), TPQ // 2, pitch, velocity))
    score.tracks.append(track)
    for time, num, den in time_signatures:
        score.time_signatures.append(symusic.TimeSignature(time, num, den))
    for time, qpm in tempos:
        score.tempos.append(symusic.Tempo(time, qpm))
    return score


def transpose(notes, interval):
    return [(beat, pitch + interval) for beat, pitch in notes]


def test_a_bar_played_four_times_repeats_three_times():
    m = structure_measures(make_score([QUARTERS] * 4))
    assert m["repeated_bar_share"] == pytest.approx(0.75)
    assert m["notes_per_bar"] == 4 and m["empty_bar_share"] == 0


def test_transposed_bars_count_as_repeats_other_figures_do_not():
    transposed = [transpose(QUARTERS, k) for k in (0, 2, -5, 7)]
    assert structure_measures(make_score(transposed))["repeated_bar_share"] == pytest.approx(0.75)
    inverted = [QUARTERS, [(0, 72), (1, 67), (2, 64), (3, 60)], [(0, 60), (1, 62), (2, 67), (3, 72)]]
    assert structure_measures(make_score(inverted))["repeated_bar_share"] == 0.0
    shifted = [QUARTERS, [(beat + 0.5, pitch) for beat, pitch in QUARTERS]]  # same pitches, off the beat
    assert structure_measures(make_score(shifted))["repeated_bar_share"] == 0.0


def test_empty_bars_are_not_repeats():
    other = [(0, 62), (2, 65)]
    m = structure_measures(make_score([QUARTERS, [], [], [], other]))
    assert m["repeated_bar_share"] == 0.0  # three empty bars in a row are no repetition
    assert m["empty_bar_share"] == pytest.approx(3 / 5)
    assert m["notes_per_bar"] == pytest.approx(6 / 5)
    # the share is over the non-empty bars: two of them, the second a repeat
    assert structure_measures(make_score([QUARTERS, [], QUARTERS]))["repeated_bar_share"] == pytest.approx(0.5)
    assert math.isnan(structure_measures(make_score([]))["repeated_bar_share"])


def test_groove_consistency():
    melody = [transpose(QUARTERS, k) for k in (0, 3, 5, 1)]  # same rhythm, other pitches
    assert structure_measures(make_score(melody))["groove_consistency"] == 1.0
    eighths = [(k / 2, 60 + k) for k in range(8)]  # 8 onsets; the quarters' 4 among them
    assert structure_measures(make_score([QUARTERS, eighths]))["groove_consistency"] == pytest.approx(1 - 4 / 48)
    # pairs of empty bars are skipped; an empty bar beside a full one differs in all its onsets
    gaps = structure_measures(make_score([QUARTERS, [], [], QUARTERS]))["groove_consistency"]
    assert gaps == pytest.approx(1 - 4 / 48)


def test_distinct_velocities_and_tempos():
    score = make_score([QUARTERS] * 4, tempos=[(0, 120), (BAR, 120.04), (2 * BAR, 90), (3 * BAR, 120),
                                               (10 * BAR, 60)])  # the last one after the piece
    score.tracks[0].notes[5].velocity = 100
    score.tracks[0].notes[6].velocity = 40
    m = structure_measures(score)
    assert m["distinct_velocities"] == 3
    assert m["distinct_tempos"] == 2  # 120 (120.04 rounds to it) and 90
    assert structure_measures(make_score([QUARTERS]))["distinct_tempos"] == 1  # MIDI's default 120
    # the tempo in force at an excerpt's start counts
    assert structure_measures(excerpt(score, 1, start_bar=2))["distinct_tempos"] == 1
    assert structure_measures(excerpt(score, 2, start_bar=1))["distinct_tempos"] == 2


def test_signatures_set_the_bars_and_one_beat_signatures_mean_four_four():
    eight_bars = [QUARTERS] * 8
    np.testing.assert_array_equal(bar_starts(make_score(eight_bars)), np.arange(8) * BAR)
    np.testing.assert_array_equal(bar_starts(make_score(eight_bars, [(0, 1, 4)])), np.arange(8) * BAR)
    np.testing.assert_array_equal(bar_starts(make_score(eight_bars, [(0, 1, 8)])), np.arange(8) * BAR)
    three = bar_starts(make_score(eight_bars, [(0, 3, 4)]))
    np.testing.assert_array_equal(three, np.arange(0, 8 * BAR, 3 * TPQ))
    # 3/4 for two bars, then 2/4
    change = bar_starts(make_score(eight_bars, [(0, 3, 4), (6 * TPQ, 2, 4)]))
    np.testing.assert_array_equal(change, np.r_[0, 3 * TPQ, np.arange(6 * TPQ, 8 * BAR, 2 * TPQ)])
    # under 1/4 the figure fills one bar and repeats; read as 1/4 bars it would not
    assert structure_measures(make_score(eight_bars, [(0, 1, 4)]))["repeated_bar_share"] == pytest.approx(7 / 8)


def test_excerpts_have_the_requested_bars():
    score = make_score([transpose(QUARTERS, k) for k in range(10)], [(0, 3, 4)])  # 40 beats: 14 bars of 3/4
    part = excerpt(score, 4, start_bar=2)
    np.testing.assert_array_equal(bar_starts(part), np.arange(4) * 3 * TPQ)
    assert part.end() <= 4 * 3 * TPQ and part.time_signatures[0].numerator == 3
    first_bar_2 = min((n.time, n.pitch) for n in score.tracks[0].notes if n.time >= 2 * 3 * TPQ)
    assert (part.tracks[0].notes[0].time, part.tracks[0].notes[0].pitch) == (first_bar_2[0] - 6 * TPQ, first_bar_2[1])
    whole = excerpt(score, 32)  # a shorter piece is used whole
    assert whole.note_num() == score.note_num() and len(bar_starts(whole)) == 14
    with pytest.raises(Exception, match="n_bars"):
        excerpt(score, 0)


def test_set_comparison_on_equal_excerpts():
    full = [make_score([QUARTERS] * 8)]
    sparse = [make_score([QUARTERS, [], QUARTERS, []] * 2 + [QUARTERS])]
    result = compare_structure(sparse * 2, full, bars=4)
    assert result["bars"] == 4 and result["pieces"] == {"generated": 2, "held_out": 1}
    assert result["held_out"]["empty_bar_share"] == 0 and result["ratio"]["empty_bar_share"] is None
    # both cut to 4 bars: 2 of 4 generated bars empty (the 9th bar of the sparse piece is cut off)
    assert result["generated"]["empty_bar_share"] == pytest.approx(0.5)
    assert result["ratio"]["notes_per_bar"] == pytest.approx(0.5)
    assert result["ratio"]["groove_consistency"] == pytest.approx((1 - 4 / 48) / 1.0)
    assert set(result["generated"]) == {"repeated_bar_share", "similar_bar_share", "looped_bar_share",
                                        "groove_consistency", "distinct_tempos",
                                        "distinct_velocities", "notes_per_bar", "empty_bar_share",
                                        "scale_consistency"}


def test_self_similarity_matrix():
    sim = self_similarity(make_score([QUARTERS, transpose(QUARTERS, 2), [], [(0, 60), (1, 64)]]))
    assert sim.shape == (4, 4)
    assert sim[0, 1] == 1.0 and sim[2].max() == 0.0
    assert sim[0, 3] == pytest.approx(2 / 4) and np.allclose(sim, sim.T)


def test_similar_bars_count_material_that_comes_back_varied():
    """A bar sharing 7 of 8 (onset, pitch) pairs with an earlier one (Jaccard 7/9 >= 0.7) comes
    back; one sharing 4 of 8 (Jaccard 4/12) does not; an exact repeat counts as both."""
    eight = [(b / 2, 60 + b) for b in range(8)]
    varied = eight[:7] + [(3.5, 80)]
    half = eight[:4] + [(b / 2, 50 + b) for b in range(4, 8)]
    m = structure_measures(make_score([eight, varied, half, eight]))
    assert m["similar_bar_share"] == pytest.approx(2 / 4) and m["repeated_bar_share"] == pytest.approx(1 / 4)
    assert m["looped_bar_share"] == pytest.approx(1 / 4)  # only the varied bar is like the bar before it
