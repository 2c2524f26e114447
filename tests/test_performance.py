"""Played music: the sustain pedal holds notes, the performance representation keeps timing
to the millisecond, velocities and pedals, tempos outside 40-250 bpm keep their speed, and
a model trained on performances samples only sequences that decode."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from symusic import ControlChange, Note, Score, Tempo, Track

from cadenza import Sampling, generate, load_run, preset, to_scores, train
from cadenza.data import representations
from cadenza.data.corpus import read_piano_score
from cadenza.data.corpus.performed import performance_signs, suggestion
from cadenza.data.dataset import prepare
from cadenza.render.pianoroll import draw_pianoroll
from midifiles import write_performed_piece

TPQ = 480


def _seconds(score: Score) -> dict[str, np.ndarray]:
    """Notes in seconds, sorted by pitch then onset."""
    track = score.to("second").tracks[0]
    cols = {k: np.asarray(v, dtype=np.float64) for k, v in track.notes.numpy().items()}
    order = np.lexsort((cols["time"], cols["pitch"]))
    return {k: v[order] for k, v in cols.items()}


def _pedalled_file(path):
    """At 120 bpm: C4 released at 0.5 s under the pedal (down 0.25 s to 1.5 s); E4 released
    at 0.5 s and struck again at 1.0 s; G4 released at 2.0 s, after the pedal."""
    score, track = Score(TPQ), Track("Piano", 0, False)
    track.notes.extend([Note(0, 480, 60, 80), Note(0, 480, 64, 80), Note(960, 240, 64, 80), Note(0, 1920, 67, 80)])
    track.controls.extend([ControlChange(240, 64, 127), ControlChange(1440, 64, 0)])
    score.tracks.append(track)
    score.tempos.append(Tempo(0, 120.0))
    score.dump_midi(str(path))
    return path


def test_a_note_released_under_the_pedal_sounds_until_the_pedal_lifts(tmp_path):
    score = read_piano_score(_pedalled_file(tmp_path / "pedal.mid"))
    remi = representations.create("remi")
    for held in (remi.piano_part(score), remi.decode(remi.encode(score))):
        notes = {(int(p), round(t, 3)): round(t + d, 3) for t, d, p in
                 zip(*(_seconds(held)[k] for k in ("time", "duration", "pitch")))}
        assert notes[(60, 0.0)] == pytest.approx(1.5, abs=0.04)  # held by the pedal
        assert notes[(64, 0.0)] == pytest.approx(1.0, abs=0.04)  # cut where the key is struck again
        assert notes[(64, 1.0)] == pytest.approx(1.5, abs=0.04)
        assert notes[(67, 0.0)] == pytest.approx(2.0, abs=0.04)  # released after the pedal: as played
        assert not len(held.tracks[0].pedals)
    played = representations.create("performance")
    back = played.decode(played.encode(score))
    keys = _seconds(back)
    assert keys["duration"][keys["pitch"] == 60][0] == pytest.approx(0.5, abs=0.006)  # the key, not the sound
    written = tmp_path / "back.mid"
    back.dump_midi(str(written))
    pedal = Score(str(written)).to("second").tracks[0].pedals
    assert len(pedal) == 1 and pedal[0].time == pytest.approx(0.25, abs=0.006)
    assert pedal[0].time + pedal[0].duration == pytest.approx(1.5, abs=0.006)


def test_a_tokenizer_saved_before_pedal_support_reads_notes_as_it_was_trained(tmp_path):
    """The shipped base (and every run from before) learnt notes as written: loading it must
    not start applying the pedal; a tokenizer saved now keeps applying it."""
    import json

    score = read_piano_score(_pedalled_file(tmp_path / "pedal.mid"))
    representations.save(representations.create("remi"), tmp_path / "now")
    assert representations.load(tmp_path / "now").pedals == "sustain"
    options = tmp_path / "now" / "cadenza_tokens.json"
    old = {k: v for k, v in json.loads(options.read_text()).items() if k != "pedals"}
    options.write_text(json.dumps(old))
    before = representations.load(tmp_path / "now")
    assert before.pedals == "ignore" and load_run("base").representation.pedals == "ignore"
    c4 = _seconds(before.piano_part(score))
    assert c4["duration"][c4["pitch"] == 60][0] == pytest.approx(0.5, abs=0.01)  # the key, as written
    options.write_text(json.dumps({**old, "pedals": "tokens"}))
    with pytest.raises(Exception, match="pedals must not be"):
        representations.load(tmp_path / "now")


def test_performance_round_trip_keeps_milliseconds_velocities_and_pedals(tmp_path):
    path = write_performed_piece(tmp_path / "played.mid", seed=3, tempos=((0, 97.0), (9000, 143.0)))
    score = read_piano_score(path)
    rep = representations.create("performance")
    back = rep.decode(rep.encode(score))
    a, b = _seconds(score), _seconds(back)
    assert len(a["time"]) == len(b["time"]) == 150
    assert np.array_equal(a["pitch"], b["pitch"])
    assert np.abs(a["time"] - b["time"]).max() <= 0.0051
    assert np.abs((a["time"] + a["duration"]) - (b["time"] + b["duration"])).max() <= 0.0101
    assert np.abs(a["velocity"] - b["velocity"]).max() <= 2
    pa, pb = score.to("second").tracks[0].pedals, back.to("second").tracks[0].pedals
    assert len(pa) == len(pb) > 3
    assert max(abs(x.time - y.time) for x, y in zip(pa, pb)) <= 0.0051


@pytest.mark.parametrize("bpm", [30.0, 21.0, 300.0, 460.0])
def test_tempos_outside_40_to_250_bpm_keep_their_speed(tmp_path, bpm):
    score, track = Score(TPQ), Track("Piano", 0, False)
    track.notes.extend([Note(k * TPQ, TPQ, 60 + k % 12, 80) for k in range(16)])
    score.tracks.append(track)
    score.tempos.append(Tempo(0, bpm))
    score.dump_midi(str(tmp_path / "slow.mid"))
    original = read_piano_score(tmp_path / "slow.mid").to("second").end()
    assert original == pytest.approx(16 * 60 / bpm, rel=1e-3)
    for name in ("remi", "tsd", "performance"):
        rep = representations.create(name)
        back = rep.decode(rep.encode(read_piano_score(tmp_path / "slow.mid")))
        written = tmp_path / f"{name}.mid"
        back.dump_midi(str(written))
        assert Score(str(written)).to("second").end() == pytest.approx(original, rel=0.015), name


def test_a_performed_corpus_is_told_about_the_performance_representation(tmp_path):
    for k in range(3):
        write_performed_piece(tmp_path / "played" / f"p{k}.mid", seed=k, notes=60)
    performed, pedals = performance_signs(read_piano_score(tmp_path / "played" / "p0.mid"))
    assert performed and pedals > 0
    logged = []
    data = prepare(str(tmp_path / "played"), "remi", val_fraction=0, log=logged.append, progress_bar=False)
    line = data.summary.lines()[-1]
    assert "looks performed (3 of 3 files" in line and "--representation performance" in line
    data = prepare(str(tmp_path / "played"), "performance", val_fraction=0, log=None, progress_bar=False)
    assert "--representation performance" not in "\n".join(data.summary.lines())
    assert suggestion(1, 3, 0, "remi") == ""  # a typeset corpus with a few played files


@pytest.fixture(scope="module")
def performance_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("perf")
    for k in range(8):
        write_performed_piece(base / "corpus" / f"p{k}.mid", seed=10 + k)
    mp = pytest.MonkeyPatch()
    mp.setenv("CADENZA_CACHE", str(base / "cache"))
    try:
        train(str(base / "corpus"), base / "run", preset(
            "small", representation="performance", seq_len=64, batch_size=8, steps_per_epoch=40, epochs=1,
            threads=1, warmup_steps=2, lr=1e-2, model_options={"dim": 32, "layers": 1, "dropout": 0.0}),
            quiet=True, workers=1)
    finally:
        mp.undo()
    return base


def test_every_sampled_performance_decodes_with_its_notes_and_pedals(performance_run):
    run = load_run(performance_run / "run")
    rep = run.representation
    result = generate(run, num=8, length=300, unit="tokens", seed=1, quiet=True,
                      sampling=Sampling(temperature=1.5, top_k=0, top_p=1.0))
    for new in result.new:  # a NoteOff or PedalOff may end what the training window began
        kinds = [rep.tokenizer[i].split("_")[0] for i in rep.base_ids(new)]
        score = rep.decode(new)
        assert score.note_num() == kinds.count("NoteOn") > 0, rep.describe(new)
        assert len(score.tracks[0].pedals) == kinds.count("Pedal"), rep.describe(new)
    assert any(rep.tokenizer[i].startswith("Pedal_") for new in result.new for i in rep.base_ids(new))


def test_a_performance_continues_its_primer_in_seconds(performance_run, tmp_path):
    run = load_run(performance_run / "run")
    primer = write_performed_piece(tmp_path / "primer.mid", seed=99, notes=40)  # 120 bpm: bars of 2 s
    result = generate(run, num=1, length=4, unit="seconds", primer=primer, primer_bars=2, seed=0, quiet=True)
    piece = to_scores(run, result)[0]
    heard = _seconds(piece)
    played = _seconds(read_piano_score(primer))
    first = played["time"] < 8.0  # two bars of four seconds on the performance clock
    assert np.isclose(heard["time"][:, None], played["time"][first][None, :], atol=0.006).any(axis=0).all()
    assert heard["time"].max() >= 8.0 and piece.to("second").end() <= 8.0 + 4.0 + 0.01
    import matplotlib.figure

    ax = matplotlib.figure.Figure().add_subplot()
    assert draw_pianoroll(ax, piece, "p", axis="seconds")["mode"] == "seconds"
    assert ax.get_xlabel() == "time (s)" and "performance" in ax.get_title()


def test_a_performance_run_gets_the_performance_sampling_defaults(performance_run, tmp_path, monkeypatch):
    """min-p 0.1 (the base preset's, chosen on REMI) cut the Pedal tokens and the long time
    shifts of performances: a performance run, from the API or the command line, samples
    with the representation's own defaults; an explicit value still wins."""
    from cadenza import cli
    from cadenza.config import REPRESENTATION_SAMPLING, Config
    from cadenza.training import trainer

    own = REPRESENTATION_SAMPLING["performance"]
    picked = lambda config: {k: getattr(config, k) for k in own}  # noqa: E731
    assert picked(load_run(performance_run / "run").config) == own
    assert picked(preset("base", representation="performance")) == own
    assert preset("base", representation="performance", gen_min_p=0.05).gen_min_p == 0.05
    assert preset("base").gen_min_p == Config().gen_min_p != own["gen_min_p"]
    seen = []

    class Stop(Exception):
        pass

    def fake_train(source, run_dir, config, **kw):
        seen.append(config)
        raise Stop  # before any work

    monkeypatch.setattr(trainer, "train", fake_train)
    for extra in (["--representation", "performance"], []):
        with pytest.raises(Stop):
            cli.main(["train", str(tmp_path), "--run-dir", str(tmp_path / "run"), *extra])
    assert picked(seen[0]) == own and seen[1].gen_min_p == Config().gen_min_p


def test_a_performance_run_presses_the_pedal_about_as_often_as_its_corpus(performance_run):
    """With the run's own sampling the pieces press the pedal, per second of music, within
    a factor of two of the training pieces."""
    run = load_run(performance_run / "run")
    rep = run.representation

    def pedals_per_second(pieces) -> float:
        scores = [rep.decode(p) for p in pieces]
        return sum(len(s.tracks[0].pedals) for s in scores) / sum(s.to("second").end() for s in scores)

    corpus = [rep.encode(read_piano_score(p)) for p in sorted((performance_run / "corpus").glob("*.mid"))]
    made = generate(run, num=8, length=300, unit="tokens", seed=2, quiet=True).new
    rate = pedals_per_second(corpus)
    assert 0.5 * rate <= pedals_per_second(made) <= 2 * rate


ROOT = Path(__file__).resolve().parents[1]
ASAP = ROOT.parent / "shared" / "data" / "asap-bach"
needs_asap = pytest.mark.skipif(not ASAP.is_dir(), reason=f"ASAP folder {ASAP} absent")


def test_tempo_stretch_is_refused_for_a_performance_run(tmp_path, capsys):
    """Performance tokens have no tempo to move: the option is refused in one line before any
    work, and no run folder is left behind."""
    from cadenza import cli

    write_performed_piece(tmp_path / "corpus" / "p.mid", seed=3)
    code = cli.main(["train", str(tmp_path / "corpus"), "--run-dir", str(tmp_path / "run"), "--representation",
                     "performance", "--tempo-stretch", "2", "--threads", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--tempo-stretch" in err and "performance" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@needs_asap
def test_evaluating_a_performance_run_measures_windows_of_four_seconds(performance_run, tmp_path):
    """A performance has no bars: ``cadenza evaluate`` measures its "bars" as 4-second
    windows from the start and says so in the report."""
    import json

    from cadenza.evaluate.run import evaluate_run

    played = ASAP / "Bach" / "Fugue" / "bwv_857" / "Bult-ItoS02M.mid"
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / played.name).symlink_to(played)
    evaluate_run(performance_run / "run", data=str(tmp_path / "held"), samples=2, bars=3, quiet=True,
                 out_dir=tmp_path / "report")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    md = (tmp_path / "report" / "report.md").read_text()
    assert report["bar_seconds"] == 4
    assert "every bar in this report" in md and "window of 4 seconds" in md
    assert "Means over the first 3 4-second windows" in md
    rep = load_run(performance_run / "run").representation
    notes = rep.decode(rep.encode(read_piano_score(played))).to("second").tracks[0].notes.numpy()
    onsets, ends = notes["time"], notes["time"] + notes["duration"]
    # the excerpt is the first 12 s (notes sounding past its end may be left out), not 3 bars of 2 s
    per_window = report["structure"]["held_out"]["notes_per_bar"]
    assert (ends <= 12.0).sum() / 3 <= per_window <= (onsets < 12.0).sum() / 3
    assert per_window > (onsets < 8.0).sum() / 3


@needs_asap
def test_the_benchmark_splits_asap_by_piece_and_scores_a_set_against_itself_as_one():
    import performance as bench

    paths = bench.performances()
    splits = [bench.split_by_piece(paths, seed) for seed in (0, 1)]
    for train_paths, held_paths in splits:
        assert sorted(train_paths + held_paths) == paths
        assert not {p.parent for p in train_paths} & {p.parent for p in held_paths}
        assert len({p.parent for p in held_paths}) == round(bench.HELD_OUT_SHARE * len({p.parent for p in paths}))
    assert splits[0][1] != splits[1][1]
    rep = representations.create("performance")
    stats = [bench.piece_stats(s) for s in bench._decoded(rep, splits[0][1][:3])]
    assert sum(s["pedals"] for s in stats) == sum(len(read_piano_score(p).tracks[0].pedals)
                                                   for p in splits[0][1][:3])
    same = bench.split_variants(stats, stats)
    assert all(v == pytest.approx(1.0) for v in same.values())
    other = bench.split_variants(stats[:1], stats[1:])
    assert other["ioi_overlap"] < 1 and other["pedal_rate_ratio"] != pytest.approx(1.0)


@needs_asap
def test_the_k_fold_protocol_holds_out_every_asap_performance_once_and_keeps_trained_folds(tmp_path):
    """Every performance is held out in exactly one fold, every piece wholly in one fold, the
    folds differ by seed; a fold with a training record is judged as it is, never retrained, and
    a record of another split is refused."""
    import json
    import performance as bench

    paths = bench.performances()
    folds = bench.fold_split(paths, 5, seed=0)
    assert sorted(p for fold in folds for p in fold) == paths
    piece_fold = [{p.parent for p in fold} for fold in folds]
    assert all(not a & b for i, a in enumerate(piece_fold) for b in piece_fold[i + 1:])
    assert sorted(len(f) for f in piece_fold) == [11, 12, 12, 12, 12]
    assert bench.fold_split(paths, 5, seed=1) != folds

    held = folds[2]
    train_paths = [p for p in paths if p not in held]
    record = {"held_out": [str(p) for p in held], "max_minutes": 20, "cpu_minutes": 20.1, "wall_minutes": 31.0}
    (tmp_path / "fold-2").mkdir()
    (tmp_path / "fold-2" / "training.json").write_text(json.dumps(record))
    assert bench.train_fold(train_paths, held, tmp_path / "fold-2", minutes=0.01) == record
    assert not (tmp_path / "fold-2" / "run").exists()
    assert bench.train_fold(train_paths, held, tmp_path / "fold-3", minutes=None) is None
    with pytest.raises(SystemExit, match="another split"):
        bench.train_fold([p for p in paths if p not in folds[1]], folds[1], tmp_path / "fold-2", minutes=0.01)


@needs_asap
def test_a_fold_count_outside_the_pieces_is_a_usage_error_before_any_work():
    import subprocess
    import sys

    for bad in ("1", "60"):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "performance.py"), "--folds", bad],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert f"--folds must be 2 to 59, got {bad}" in done.stderr.splitlines()[-1]
        assert "round trip" not in done.stdout  # refused before the slow round trip


def test_the_k_fold_mixture_weighs_each_set_the_same_per_second():
    """Pooling sets of unequal length, each set counts for the same number of seconds (as each
    fold's generated pieces do): a mixture against itself scores 1, and a long set does not
    drown a short one."""
    import performance as bench

    def piece(ioi, seconds, pedals):
        return {"ioi": np.full(int(seconds / ioi), ioi), "velocity": np.full(int(seconds / ioi), 64.0),
                "duration": np.full(int(seconds / ioi), ioi), "pedals": pedals, "seconds": seconds}

    dense, sparse = [piece(0.1, 600.0, 60)], [piece(1.0, 60.0, 30)]
    same = bench.mixture_figures(bench.mixture([dense, sparse]), bench.mixture([dense, sparse]))
    assert same["ioi_overlap"] == pytest.approx(1) and same["pedal_rate_ratio"] == pytest.approx(1)
    assert same["duration_overlap"] == pytest.approx(1) and same["long_share_generated"] == 0
    half = bench.mixture_figures(bench.mixture([dense, sparse]), bench.mixture([dense]))
    # a second of each: 10 intervals of 0.1 s for one of 1 s (plain pooling: 6,000 for 60)
    assert half["ioi_overlap"] == pytest.approx(10 / 11) and half["duration_overlap"] == pytest.approx(10 / 11)
    assert half["pedal_rate_ratio"] == pytest.approx((0.1 + 0.5) / 2 / 0.1)


# -- stuck notes (issue 29): no note outlives the corpus's longest ------------------------------
def test_the_grammar_ends_a_note_within_the_longest_note_of_the_corpus():
    """A hand-written performance: C4 struck, then time moves. With a longest note of 1.5 s
    the time moves that would carry C4 past 1.5 s are masked; at 1.5 s its NoteOff is the
    only token left; once released, time moves freely again. A NoteOff is never allowed for
    a key that is not sounding."""
    rep = representations.create("performance")
    vocab, name = rep.tokenizer.vocab, rep.tokenizer.__getitem__
    ids = lambda *tokens: [vocab[t] for t in tokens]  # noqa: E731
    rep.limit_notes(1.5)
    g = rep.grammar()

    def allowed(*tokens):
        return {name(int(i)) for i in np.flatnonzero(g.allowed(g.start(ids(*tokens))))}

    after_1s = allowed("NoteOn_60", "Velocity_63", "TimeShift_1.0.4")
    shifts = {t for t in after_1s if t.startswith("TimeShift")}
    assert "TimeShift_0.50.100" in shifts and "TimeShift_0.51.100" not in shifts and "TimeShift_1.0.4" not in shifts
    assert "NoteOff_60" in after_1s and "NoteOff_62" not in after_1s
    assert allowed("NoteOn_60", "Velocity_63", "TimeShift_1.0.4", "TimeShift_0.50.100") == {"NoteOff_60"}
    # two notes: the older one decides; released, time is free again
    struck = ("NoteOn_60", "Velocity_63", "TimeShift_1.0.4", "NoteOn_64", "Velocity_63", "TimeShift_0.50.100")
    assert allowed(*struck) == {"NoteOff_60"}
    free = allowed(*struck, "NoteOff_60")
    assert "TimeShift_1.0.4" in free and "TimeShift_1.1.4" not in free  # E4 has 1 s left
    # the pedal: held 2 s at most, then lifted before time moves on; never between a NoteOn and its Velocity
    rep.limit_notes(10.0, 2.0)
    g = rep.grammar()
    assert "Pedal_0" not in allowed("TimeShift_0.10.100", "NoteOn_60")
    held = allowed("Pedal_0", "TimeShift_1.0.4", "NoteOn_60", "Velocity_63")
    assert "TimeShift_1.0.4" in held and "TimeShift_1.1.4" not in held
    assert allowed("Pedal_0", "TimeShift_1.0.4", "TimeShift_1.0.4") == {"PedalOff_0"}
    assert "TimeShift_4.0.4" in allowed("Pedal_0", "TimeShift_1.0.4", "TimeShift_1.0.4", "PedalOff_0")
    rep.limit_notes(None)
    assert "TimeShift_4.0.4" in {name(int(i)) for i in np.flatnonzero(rep.grammar().allowed(
        rep.grammar().start(ids("NoteOn_60", "Velocity_63", "TimeShift_4.0.4", "TimeShift_4.0.4"))))}


def test_the_grammar_ends_no_note_sooner_than_the_shortest_of_the_corpus():
    """A hand-written performance with a shortest note of 30 ms: C4 struck, 10 ms later its
    NoteOff is masked (not the older E4's), 20 ms later still, at 30 ms it is allowed; a
    run without the shortest note releases C4 after 10 ms."""
    rep = representations.create("performance")
    vocab, name = rep.tokenizer.vocab, rep.tokenizer.__getitem__
    rep.limit_notes(10.0, None, 0.03)

    def allowed(*tokens):
        g = rep.grammar()
        return {name(int(i)) for i in np.flatnonzero(g.allowed(g.start([vocab[t] for t in tokens])))}

    struck = ("NoteOn_64", "Velocity_63", "TimeShift_0.50.100", "NoteOn_60", "Velocity_63", "TimeShift_0.1.100")
    assert "NoteOff_60" not in allowed(*struck) and "NoteOff_64" in allowed(*struck)
    assert "NoteOff_60" not in allowed(*struck, "TimeShift_0.1.100")
    assert "NoteOff_60" in allowed(*struck, "TimeShift_0.2.100")
    rep.limit_notes(10.0)
    assert "NoteOff_60" in allowed(*struck)


def test_decoding_ends_a_note_never_released_at_the_longest_note_of_the_corpus():
    rep = representations.create("performance")
    drone = [rep.tokenizer.vocab[t] for t in ("NoteOn_48", "Velocity_63", "NoteOn_60", "Velocity_63",
                                              "TimeShift_0.50.100", "NoteOff_60", "TimeShift_4.0.4",
                                              "TimeShift_4.0.4", "NoteOn_62", "Velocity_63")]
    assert max(_seconds(rep.decode(drone))["duration"]) == pytest.approx(8.5, abs=0.011)  # to the end
    rep.limit_notes(2.0)
    keys = _seconds(rep.decode(drone))
    assert max(keys["duration"]) == pytest.approx(2.0, abs=0.011)
    assert keys["duration"][keys["pitch"] == 60][0] == pytest.approx(0.5, abs=0.011)  # released: as played


@pytest.mark.slow
def test_a_performance_run_generates_no_note_longer_than_the_longest_of_its_corpus(performance_run):
    """The run keeps its corpus's longest note (0.94 s at most in these pieces); sampled
    pieces hold none longer, where the same model sampled without the limit leaves notes
    sounding far longer (a NoteOn whose NoteOff it never samples)."""
    run = load_run(performance_run / "run")
    rep = run.representation
    corpus = [rep.decode(rep.encode(read_piano_score(p))) for p in sorted((performance_run / "corpus").glob("*.mid"))]
    longest = max(_seconds(s)["duration"].max() for s in corpus)
    assert run.token_stats["longest_note_beats"] == pytest.approx(longest, abs=1e-5) and longest < 1.0
    assert rep.longest_note == pytest.approx(longest, abs=1e-5)
    pedal = max(s.to("second").tracks[0].pedals.numpy()["duration"].max() for s in corpus)
    assert rep.longest_pedal == pytest.approx(run.token_stats["longest_pedal_beats"]) == pytest.approx(pedal, abs=1e-5)

    def longest_made() -> float:
        scores = to_scores(run, generate(run, num=8, length=20, unit="seconds", seed=3, quiet=True))
        pedals = [p.duration for s in scores for p in s.to("second").tracks[0].pedals]
        assert max(pedals) <= pedal + 1e-5 or rep.longest_pedal is None
        return max(_seconds(s)["duration"].max() for s in scores)

    assert longest_made() <= longest + 1e-5
    rep.limit_notes(None)
    assert longest_made() > 2 * longest


def test_a_performance_run_generates_no_note_shorter_than_the_shortest_of_its_corpus(performance_run):
    """The run keeps its corpus's shortest note (the 0.1th percentile of its durations);
    sampled notes are no shorter (but those the piece's end cuts), where the same model
    sampled without it ends some sooner."""
    run = load_run(performance_run / "run")
    rep = run.representation
    corpus = [rep.decode(rep.encode(read_piano_score(p))) for p in sorted((performance_run / "corpus").glob("*.mid"))]
    shortest = np.percentile(np.concatenate([_seconds(s)["duration"] for s in corpus]), 0.1, method="lower")
    assert run.token_stats["shortest_note_beats"] == pytest.approx(shortest, abs=1e-5) == rep.shortest_note

    def shortest_made() -> float:
        scores = to_scores(run, generate(run, num=4, length=10, unit="seconds", sampling=Sampling(temperature=1.5), seed=3,
                                            quiet=True))
        ended = [n["duration"][n["time"] + n["duration"] < s.to("second").end() - 0.02]
                 for s, n in ((s, _seconds(s)) for s in scores)]
        return float(np.concatenate(ended).min())

    assert shortest_made() >= shortest - 1e-5
    rep.limit_notes(rep.longest_note, rep.longest_pedal)
    assert shortest_made() < shortest


def test_evaluate_finds_a_stuck_note_by_its_duration(tmp_path):
    from cadenza.evaluate.report import write_report
    from cadenza.evaluate.sanity import duration_checks

    def piece(durations) -> Score:
        score, track = Score(TPQ), Track("Piano", 0, False)
        track.notes.extend([Note(240 * k, d, 60 + k % 12, 80) for k, d in enumerate(durations)])
        score.tracks.append(track)
        score.tempos.append(Tempo(0, 120.0))
        return score

    real = [piece([120, 240, 480, 960] * 250)]  # 0.125 to 1 s
    same = duration_checks(real, real)
    assert same["duration_overlap"] == pytest.approx(1.0) and same["long_share_generated"] == same["long_share_real"]
    assert same["long_note_s"] == pytest.approx(1.0)
    stuck = duration_checks([piece([120, 240, 480, 960] * 24 + [480 * 60] * 4)], real)
    assert stuck["long_share_generated"] == pytest.approx(0.04) and stuck["long_share_real"] == 0
    assert stuck["duration_overlap"] == pytest.approx(0.96)
    made = [piece([120, 240, 480, 960] * 24 + [480 * 60] * 4)]
    report = write_report(tmp_path, made, [piece([120, 240, 480, 960] * 25)], None, "stuck")
    assert report["durations"]["long_share_generated"] == pytest.approx(0.04)
    assert "longer than 1 s (the held-out notes' 99.9th percentile): generated 0.040" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("bad", ["x", -1.0, 0, True])
def test_a_damaged_longest_note_in_token_stats_is_a_one_line_error(tmp_path, bad):
    from cadenza import rundir
    from cadenza.errors import CadenzaError

    path = tmp_path / rundir.TOKEN_STATS
    rundir.save_token_stats({"seen": [1, 2], "longest_note_beats": bad}, path)
    with pytest.raises(CadenzaError, match="longest_note_beats"):
        rundir.load_token_stats(path, 10)
    rundir.save_token_stats({"seen": [1, 2], "longest_note_beats": None}, path)  # a run whose tokens hold durations
    assert rundir.load_token_stats(path, 10)["longest_note_beats"] is None


def test_the_probability_of_a_forbidden_key_event_goes_to_a_sounding_key():
    """C4 struck at 0 s, E4 at 1 s: a NoteOff of a silent key counts for C4's (the oldest
    sounding), a NoteOn of E4 (sounding) for E4's NoteOff; sampled with all the model's
    probability on NoteOff_62 (silent), C4 is released, never anything else."""
    import torch

    from cadenza.generation.sampling import sample_next

    rep = representations.create("performance")
    vocab = rep.tokenizer.vocab
    rep.limit_notes(10.0)
    g = rep.grammar()
    state = g.start([vocab[t] for t in ("NoteOn_60", "Velocity_63", "TimeShift_1.0.4", "NoteOn_64", "Velocity_63",
                                        "TimeShift_0.10.100")])
    moves = dict(zip(*(a.tolist() for a in g.redirect(state))))
    assert moves[vocab["NoteOff_62"]] == moves[vocab["NoteOff_21"]] == vocab["NoteOff_60"]
    assert moves[vocab["NoteOn_64"]] == vocab["NoteOff_64"] and vocab["NoteOn_62"] not in moves
    logits = torch.full((1, rep.vocab_size), -30.0)
    logits[0, vocab["NoteOff_62"]] = 10.0
    allowed = torch.from_numpy(g.allowed(state))[None]
    for redirect, wanted in ((None, None), ([g.redirect(state)], vocab["NoteOff_60"])):
        ids = {int(sample_next(logits, allowed=allowed, redirect=redirect,
                               generator=torch.Generator().manual_seed(k))[0]) for k in range(20)}
        assert (ids == {wanted}) if wanted else (len(ids) > 5)  # without: spread over every allowed token
    rep.limit_notes(None)
    assert rep.grammar().redirect(rep.grammar().start([vocab["NoteOn_60"], vocab["Velocity_63"]])) is None
