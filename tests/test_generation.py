"""Generation: a continuation keeps its primer's tempo, metre, key and bars; lengths count
new material; tokens never seen in training are never sampled; a corpus that keeps one
tempo per piece gives pieces with one tempo; runaway bars are capped and reported."""
from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from cadenza import generate, load_run, preset, rundir, to_scores, train
from cadenza.data import representations
from cadenza.cli import main
from cadenza.data.bars import bar_tick, bars_before
from cadenza.data.scores import bar_contents
from cadenza.generation.generate import _BarMeter
from cadenza.generation.form import FormPlan, SectionCopier, parse_form, section_bars
from cadenza.generation.sampling import Sampling, sample_next
from cadenza.data.token_stats import TokenKinds, token_stats
from midifiles import random_piece, write_piece

HOT = Sampling(temperature=3.0, top_p=1.0)  # every token gets its chance: the masks must hold

TINY = dict(seq_len=64, batch_size=8, steps_per_epoch=60, epochs=1, threads=1, warmup_steps=2, lr=1e-2,
            model_options={"dim": 32, "layers": 1, "dropout": 0.1})
BAR_34 = 3 * 480  # one 3/4 bar at 480 ticks per quarter


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny REMI run trained on random 4/4 pieces."""
    base = tmp_path_factory.mktemp("gen")
    rng = random.Random(7)
    for k in range(12):
        write_piece(base / "corpus" / f"piece{k:02d}.mid", random_piece(rng))
    mp = pytest.MonkeyPatch()
    mp.setenv("CADENZA_CACHE", str(base / "cache"))
    try:
        train(str(base / "corpus"), base / "run", preset("small", **TINY), quiet=True, workers=1)
    finally:
        mp.undo()
    assert (base / "run" / rundir.TOKEN_STATS).exists()
    return base / "run"


@pytest.fixture
def run(run_dir):
    return load_run(run_dir)


def _with_stats(run, **changes):
    run.token_stats = {**run.token_stats, **changes}
    return run


@pytest.fixture
def primer(tmp_path):
    """Six bars of 3/4 at 108 bpm in D major, one note per beat."""
    score = Score(480)
    track = Track("Piano", 0, False)
    for beat in range(18):
        track.notes.append(Note(beat * 480, 480, 60 + beat % 7, 80))
    score.tracks.append(track)
    score.tempos.append(Tempo(0, 108.0))
    score.time_signatures.append(TimeSignature(0, 3, 4))
    score.key_signatures.append(KeySignature(0, 2, 0))
    path = tmp_path / "primer.mid"
    score.dump_midi(str(path))
    return path


def _written(score: Score, path) -> Score:
    score.dump_midi(str(path))
    return Score(str(path))


def _bar_tokens(run, ids) -> int:
    return int(TokenKinds(run.representation).bars[np.asarray(ids)].sum())


def _tempo_values(run, ids) -> list[str]:
    values = TokenKinds(run.representation).values("Tempo")
    return [v for i in ids for v in values[int(i)]]


# -- continuation ------------------------------------------------------------------------
def test_continuation_keeps_the_primers_tempo_metre_key_and_bars(run, primer, tmp_path):
    result = generate(run, num=2, length=3, unit="bars", primer=primer, primer_bars=4, seed=0)
    assert all(_bar_tokens(run, new) == 3 for new in result.new)  # each piece stopped on its own
    source = Score(str(primer))
    for k, score in enumerate(to_scores(run, result)):
        back = _written(score, tmp_path / f"full{k}.mid")
        assert [round(t.qpm, 2) for t in back.tempos] == [108.0]
        assert [(ts.numerator, ts.denominator) for ts in back.time_signatures] == [(3, 4)]
        assert [(ks.key, ks.tonality) for ks in back.key_signatures] == [(2, 0)]
        notes = back.tracks[0].notes.numpy()
        primer_part = notes["time"] < 4 * BAR_34
        expected = source.tracks[0].notes.numpy()["time"]
        assert list(notes["time"][primer_part]) == list(expected[expected < 4 * BAR_34])
        assert (notes["time"] + notes["duration"]).max() <= 7 * BAR_34  # 4 primer bars + 3 new ones
        assert bars_before(back, back.end()) <= 7
        assert (~primer_part).any()


def test_continuation_only_starts_at_zero_with_the_primers_tempo_and_metre(run, primer, tmp_path):
    result = generate(run, length=2, unit="bars", primer=primer, seed=1)
    assert result.primer.bars == 6
    only = _written(to_scores(run, result, continuation_only=True)[0], tmp_path / "only.mid")
    assert [round(t.qpm, 2) for t in only.tempos] == [108.0]
    assert [(ts.numerator, ts.denominator) for ts in only.time_signatures] == [(3, 4)]
    assert only.note_num() > 0 and only.end() <= bar_tick(only, 2)
    full = to_scores(run, result)[0]
    assert full.tracks[0].notes.numpy()["time"].max() >= 6 * BAR_34  # after the whole primer


def test_tempo_and_metre_tokens_follow_the_primer(run, primer):
    """At a high temperature the model tries every Tempo and TimeSig: only the primer's pass."""
    run = _with_stats(run, seen=list(range(run.representation.vocab_size)))
    result = generate(run, num=2, length=300, primer=primer, seed=2, sampling=HOT)
    kinds = TokenKinds(run.representation)
    in_primer = {v for v in _tempo_values(run, result.context[0])}
    for new in result.new:
        assert set(_tempo_values(run, new)) <= in_primer
        assert {v for i in new for v in kinds.values("TimeSig")[int(i)]} <= {"3/4"}


def test_primer_bars_must_hold_notes(run, tmp_path):
    path = write_piece(tmp_path / "late.mid", [(4 * 1920, 480, 60, 80)])
    with pytest.raises(Exception, match="first 2 bars"):
        generate(run, length=1, unit="bars", primer=path, primer_bars=2)


# -- lengths -----------------------------------------------------------------------------
def test_length_in_bars_counts_new_bars_and_each_piece_stops_on_its_own(run):
    result = generate(run, num=3, length=4, unit="bars", seed=3)
    for new, score in zip(result.new, to_scores(run, result)):
        assert _bar_tokens(run, new[:-1]) == 3 and _bar_tokens(run, new) == 4  # the 4th bar line ends it
        notes = score.tracks[0].notes.numpy()
        assert (notes["time"] + notes["duration"]).max() <= bar_tick(score, 4)
    assert len({len(new) for new in result.new}) > 1


def test_length_in_seconds_counts_new_seconds(run, tmp_path):
    result = generate(run, num=2, length=3, unit="seconds", seed=9)
    for k, score in enumerate(to_scores(run, result)):
        back = _written(score, tmp_path / f"s{k}.mid")
        assert 0 < back.to("second").end() <= 3.001


def test_a_bar_that_never_closes_is_capped_and_reported(run):
    messages = []
    result = generate(_with_stats(run, p99_tokens_per_bar=1), num=2, length=50, unit="bars", seed=4,
                      log=messages.append)
    assert result.capped == [0, 1]
    assert len(result.warnings) == 2 and all("piece" in w and "cap" in w for w in result.warnings)
    assert sum("warning" in m for m in messages) == 2
    assert all(len(new) < 50 * 8 for new in result.new)


def test_a_model_stuck_writing_rests_without_bar_lines_is_capped(run):
    """Rests skip bar lines, so a Rest once reset the bar's token count: a model that wrote a
    Rest now and then and never a Bar ran to the whole piece's budget (27,008 tokens seen)."""
    kinds = TokenKinds(run.representation)
    rest = int(np.flatnonzero(kinds.count("Rest"))[0])
    other = int(np.flatnonzero((kinds.count("Rest") == 0) & (kinds.bars == 0))[0])
    meter = _BarMeter(32, 10, kinds, decode=lambda new: run.representation.decode(new))
    new: list[int] = []
    while not meter.done and len(new) < 10_000:
        new.append(rest if len(new) % 5 == 0 else other)
        meter.add(new[-1], new)
    assert meter.capped and len(new) <= 21  # twice the bar's allowance after a Rest


def test_a_piece_that_crosses_bar_lines_by_rests_alone_reaches_its_length(run):
    """MidiTok's REMI starts a rest where the notes before it end, so a note of two beats and a
    rest of two beats reach the next bar without a Bar token (a base continuation wrote 1,881
    tokens so and was capped at bar 0): the meter counts the bar the next note lands in."""
    vocab = run.representation.tokenizer.vocab

    def first(prefix: str) -> int:
        return next(i for name, i in vocab.items() if name.startswith(prefix))

    kinds = TokenKinds(run.representation)
    start = [first("Bar")] + ([first("TimeSig_4/4")] if any(n.startswith("TimeSig") for n in vocab) else [])
    note = [first("Position_0"), first("Pitch_60"), first("Velocity"), first("Duration_2.0.")]
    bar = note + [first("Rest_2.0.")]  # two beats of note, two of rest: the next note is in the next bar
    meter = _BarMeter(4, 10 * len(bar), kinds, decode=lambda new: run.representation.decode(new))
    new: list[int] = []
    for token in start + bar * 6:
        new.append(token)
        meter.add(token, new)
        if meter.done:
            break
    assert not meter.capped and meter.progress == 4
    assert _bar_tokens(run, new) == 1 and len(new) == len(start) + 3 * len(bar) + len(note)


def test_quiet_generation_logs_progress(run, monkeypatch):
    from cadenza.generation import generate as generate_module

    monkeypatch.setattr(generate_module, "LOG_EVERY_S", 0.0)
    messages = []
    generate(run, num=2, length=40, seed=5, quiet=True, log=messages.append)
    assert any(m.startswith("generating: ") and "tokens" in m for m in messages)


# -- what may be sampled ---------------------------------------------------------------------
def test_tokens_never_seen_in_training_are_never_sampled(run):
    kinds = TokenKinds(run.representation)
    unseen = {i for i, parts in enumerate(kinds.parts) if parts[0][0] == "Pitch" and 55 <= int(parts[0][1]) <= 70}
    seen = sorted(set(run.token_stats["seen"]) - unseen)
    result = generate(_with_stats(run, seen=seen), num=2, length=300, seed=6, sampling=HOT)
    assert not unseen & {int(i) for new in result.new for i in new}
    free = generate(_with_stats(run, seen=list(range(kinds.size))), num=2, length=300, seed=6,
                    sampling=HOT)
    assert unseen & {int(i) for new in free.new for i in new}


@pytest.mark.parametrize("changing, most", [(0.2, 1), (0.8, 2)])
def test_a_corpus_with_one_tempo_per_piece_gives_pieces_with_one_tempo(run, changing, most):
    """Without a primer: one tempo per piece when most of the corpus keeps one tempo."""
    seen = list(range(run.representation.vocab_size))
    run = _with_stats(run, seen=seen, pieces_changing_tempo=changing)
    result = generate(run, num=4, length=400, seed=7, sampling=HOT)
    kinds = TokenKinds(run.representation)
    distinct = []
    for context, new in zip(result.context, result.new):
        in_force = kinds.in_force("Tempo", context)
        distinct.append(len(set(_tempo_values(run, new)) | ({in_force} if in_force else set())))
    assert (max(distinct) <= 1) if most == 1 else (max(distinct) >= 2)
    if most == 1:  # and the file has that one tempo from its start (not MidiTok's default first)
        assert all(len({round(t.qpm, 2) for t in score.tempos}) == 1 for score in to_scores(run, result))


def test_without_a_primer_a_piece_keeps_the_tempo_of_its_context(run, primer, tmp_path):
    """Windows at 108 bpm, new bars without a Tempo token: they keep 108's bin (106.91), not
    MidiTok's default (120)."""
    ids = run.representation.encode(Score(str(primer)))
    run.primers = np.stack([np.resize(ids, run.config.seq_len)] * 4)
    kinds = TokenKinds(run.representation)
    run = _with_stats(run, seen=[i for i in range(kinds.size) if not kinds.values("Tempo")[i]])
    result = generate(run, num=2, length=2, unit="bars", seed=10)
    assert not any(_tempo_values(run, new) for new in result.new)
    for k, score in enumerate(to_scores(run, result)):
        back = _written(score, tmp_path / f"w{k}.mid")
        bins = [float(t.split("_")[1]) for t in run.representation.tokenizer.vocab if t.startswith("Tempo_")]
        assert {round(t.qpm, 2) for t in back.tempos} == {min(bins, key=lambda v: abs(v - 108))} != {120.0}


def test_runs_without_token_stats_still_generate(run_dir, tmp_path):
    old = shutil.copytree(run_dir, tmp_path / "old")
    (old / rundir.TOKEN_STATS).unlink()
    run = load_run(old)
    assert run.token_stats is None
    result = generate(run, num=2, length=2, unit="bars", seed=8)
    assert result.capped == [] and all(_bar_tokens(run, new) == 2 for new in result.new)
    assert all(score.note_num() > 0 for score in to_scores(run, result))


# -- token statistics ------------------------------------------------------------------------
def _piece(tempos: list[float], bars: int = 4) -> Score:
    score = Score(480)
    track = Track("Piano", 0, False)
    for beat in range(4 * bars):
        track.notes.append(Note(beat * 480, 480, 60 + beat % 3, 80))
    score.tracks.append(track)
    for k, qpm in enumerate(tempos):
        score.tempos.append(Tempo(k * 1920, qpm))
    return score


def test_token_stats_count_seen_tokens_tempo_changes_and_bar_sizes():
    rep = representations.create("remi")
    pieces = [rep.encode(_piece([100.0, 100.0])), rep.encode(_piece([100.0, 160.0, 100.0]))]
    vocab = rep.tokenizer.vocab
    table = rep.transposition_table(12)
    stats = token_stats(pieces, rep, [np.arange(rep.vocab_size), table])
    seen = set(stats["seen"])
    assert {vocab["Pitch_60"], vocab["Pitch_62"], vocab["Pitch_72"], vocab["Pitch_74"]} <= seen
    assert vocab["Pitch_64"] not in seen and vocab["Pitch_76"] not in seen
    assert stats["tempo_changes_per_piece"] == 1.0 and stats["pieces_changing_tempo"] == 0.5  # 0 and 2 changes
    assert stats["timesig_changes_per_piece"] == 0.0 and stats["pieces_changing_timesig"] == 0.0
    # Bar TimeSig, 4 x Position Pitch Velocity Duration, and a Tempo where one is set
    assert stats["max_tokens_per_bar"] == stats["p99_tokens_per_bar"] == 19
    assert stats["pieces"] == 2
    assert token_stats(pieces[:1], rep)["tempo_changes_per_piece"] == 0.0


def test_token_stats_round_trip_through_the_run_directory(tmp_path):
    rundir.save_token_stats({"seen": [1, 2], "tempo_changes_per_piece": 0.0}, tmp_path / rundir.TOKEN_STATS)
    assert rundir.load_token_stats(tmp_path / rundir.TOKEN_STATS, 10)["seen"] == [1, 2]
    assert rundir.load_token_stats(tmp_path / "absent.json", 10) is None
    with pytest.raises(Exception, match="outside the vocabulary"):
        rundir.load_token_stats(tmp_path / rundir.TOKEN_STATS, 2)


# -- command line ----------------------------------------------------------------------------
def test_cli_primer_bars_and_continuation_only(run_dir, primer, tmp_path, capsys):
    out = tmp_path / "x.mid"
    assert main(["generate", str(run_dir), "-o", str(out), "--primer", str(primer), "--primer-bars", "2",
                 "--length", "2", "--unit", "bars", "--continuation-only", "--quiet", "--seed", "1"]) == 0
    back = Score(str(out))
    assert [round(t.qpm, 2) for t in back.tempos] == [108.0] and back.end() <= bar_tick(back, 2)
    capsys.readouterr()
    fresh = tmp_path / "y.mid"  # (x.mid exists now: generate would refuse to overwrite it first)
    assert main(["generate", str(run_dir), "-o", str(fresh), "--primer-bars", "2"]) == 2
    assert "--primer-bars needs --primer" in capsys.readouterr().err
    assert main(["generate", str(run_dir), "-o", str(fresh), "--primer", str(primer), "--primer-bars", "0"]) == 2
    assert "--primer-bars must be >= 1" in capsys.readouterr().err


def test_a_transformer_never_attends_past_its_training_window(corpus_dir, tmp_path):
    cfg = preset("transformer", **{**TINY, "seq_len": 24, "steps_per_epoch": 3,
                                   "model_options": {"dim": 32, "layers": 1, "heads": 2, "dropout": 0.0}})
    train(str(corpus_dir), tmp_path / "run", cfg, quiet=True, workers=1)
    run = load_run(tmp_path / "run")
    seen, forward = [], run.model.forward

    def spy(ids, state=None, last_only=False):
        past = 0 if state is None else state[0][0].size(2)
        seen.append(past + ids.size(1))
        return forward(ids, state=state, last_only=last_only)

    run.model.forward = spy
    result = generate(run, num=2, length=200, unit="tokens", seed=0)
    assert all(len(n) == 200 for n in result.new)
    assert max(seen) <= 24 and seen.count(18) >= 5  # restarted on the last 3/4 of the window


# -- form and min-p ---------------------------------------------------------------------------
def test_a_form_plan_repeats_first_sections_and_varies_their_last_bar():
    plan = FormPlan("AABA", 8)
    assert [plan.source(b) for b in (0, 7, 8, 14, 15, 16, 23, 24, 30, 31, 32)] == \
        [None, None, 0, 6, None, None, None, 0, 6, None, None]
    assert plan.repeated_bars(32) == 14
    assert section_bars("AABA", 32, "bars") == 8 and section_bars("AB", 3, "seconds") == 8
    assert parse_form(" aaba ") == "AABA" and parse_form("none") == ""


def _bars_of(run, new) -> list[list[int]]:
    """The new tokens bar by bar (each bar from its Bar token; bar 0 from the start)."""
    starts = [0] + [i for i, t in enumerate(new) if TokenKinds(run.representation).bars[t]]
    return [list(new[a:b]) for a, b in zip(starts, starts[1:] + [len(new)])]


def test_a_form_brings_sections_back_bar_for_bar(run):
    result = generate(run, num=3, length=8, unit="bars", seed=11, form="AABA")
    for new, score in zip(result.new, to_scores(run, result)):
        bars = _bars_of(run, new)
        # sections of 2 bars: bars 2 and 6 repeat bar 0 (bar 0 lacks the Bar token that opens the others)
        assert bars[2][1:] == bars[0] and bars[6][1:] == bars[0]
        contents, _ = bar_contents(score)
        assert contents[2] == contents[0] and contents[6] == contents[0]
    plain = generate(run, num=3, length=8, unit="bars", seed=11, form="none")
    assert all(_bars_of(run, new)[2][1:] != _bars_of(run, new)[0] for new in plain.new)


def test_a_form_counts_from_the_first_bar_line_when_the_context_ends_inside_a_bar():
    """A primer can end inside a bar (an event on its closing bar line): the form is laid
    from the first bar line the model writes, never dropped."""
    bar, other = 1, 2
    tokens = np.array([0, 1, 0])  # token 1 is a Bar
    copier = SectionCopier(FormPlan("AA", 2), tokens, start=None)
    new: list[int] = []
    sampled = [other, bar, other, other, bar, other, bar, 0, 0, 0, bar]  # a partial bar, then bars 0-3
    for token in sampled:
        new.append(copier.choose(token, new))
        copier.added(new[-1], new)
    first = new.index(bar)
    bars = [list(b) for b in np.split(np.array(new[first:]), np.flatnonzero(np.array(new[first:]) == bar)[1:])]
    assert FormPlan("AA", 2).source(2) == 0 and bars[2] == bars[0] == [bar, other, other]  # bar 0 came back


def test_a_bad_form_is_a_one_line_error(run_dir, tmp_path, capsys):
    assert main(["generate", str(run_dir), "-o", str(tmp_path / "x.mid"), "--form", "A-B"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--form" in err and "\n" not in err and not (tmp_path / "x.mid").exists()


def test_min_p_drops_tokens_far_below_the_likeliest():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.04, 0.01]])
    draws = [int(sample_next(probs.log(), Sampling(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1), generator=torch.Generator().manual_seed(k))[0])
             for k in range(400)]
    assert set(draws) == {0, 1, 2}
