"""The remembering LSTM (models/lstm_memory.py): the model contract (one call, token by
token and chunks give the same logits, also past its attention window), and growth from a
trained lstm run: the same logits at the start, then its own training."""
from __future__ import annotations

import random

import pytest
import torch

from cadenza import models, preset, train
from cadenza.rundir import load_run
from midifiles import random_piece, write_piece


def small(window: int, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.create("lstm_memory", 50, {"dim": 32, "layers": 2, "heads": 4, "window": window, "dropout": 0.0,
                                              **options})
    for p in model.memory.parameters():  # not the zero start: the attention must matter here
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


@pytest.mark.parametrize("window, cache", [(8, 0), (4096, 0), (8, 12), (4096, 4096)])
def test_one_call_token_by_token_and_chunks_agree(window, cache):
    model = small(window, cache_window=cache)
    ids = torch.randint(0, 50, (3, 40))
    with torch.no_grad():
        whole, _ = model(ids)
        state, steps = None, []
        for t in range(ids.size(1)):
            logits, state = model(ids[:, t:t + 1], state=state)
            steps.append(logits)
        chunks, state = [], None
        for a, b in ((0, 5), (5, 23), (23, 40)):
            logits, state = model(ids[:, a:b], state=state)
            chunks.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(chunks, 1), whole, atol=1e-5, rtol=1e-4)
    keys = state[1][0]  # a tape: at most twice the window, or the window and the longest chunk (18)
    assert keys.view().size(2) >= min(window - 1, 40) and keys.buffer.size(2) <= max(2 * (window - 1), window - 1 + 18)


def test_attention_reads_only_its_window():
    """A token more than ``window`` back changes nothing through the attention (only through
    the LSTM): with the LSTM's input fixed, changing it leaves the logits equal."""
    model = small(6)
    h = torch.randn(1, 30, 32)
    with torch.no_grad():
        out, _ = model.memory(h, None, 0)
        changed = h.clone()
        changed[0, 10] += 5.0
        out2, _ = model.memory(changed, None, 0)
    assert torch.allclose(out[0, 16:], out2[0, 16:]) and not torch.allclose(out[0, 10:16], out2[0, 10:16])


def test_grows_from_a_trained_lstm_run(tmp_path):
    rng = random.Random(2)
    for k in range(8):
        write_piece(tmp_path / "corpus" / f"p{k}.mid", random_piece(rng))
    tiny = dict(seq_len=64, batch_size=8, steps_per_epoch=10, epochs=1, threads=1, warmup_steps=2, lr=1e-2,
                model_options={"dim": 32, "layers": 1, "dropout": 0.1})
    train(str(tmp_path / "corpus"), tmp_path / "lstm", preset("small", **tiny), quiet=True, workers=1)
    start = load_run(tmp_path / "lstm")
    grown = models.create("lstm_memory", start.representation.vocab_size,
                          {"dim": 32, "layers": 1, "dropout": 0.1, "heads": 4})
    from cadenza.training.finetune import load_start_weights

    load_start_weights(grown, start.config.replace(init_from=str(tmp_path / "lstm"), model="lstm_memory"))
    ids = torch.randint(0, start.representation.vocab_size, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(ids)[0], start.model.eval()(ids)[0])
    # and through the CLI path: a fine-tune that grows the model trains and saves it
    train(str(tmp_path / "corpus"), tmp_path / "grown", None, start_from=str(tmp_path / "lstm"),
          overrides={"model": "lstm_memory", "max_minutes": 1, "steps_per_epoch": 5, "epochs": 1, "ema": 0},
          quiet=True, workers=1)
    run = load_run(tmp_path / "grown")
    assert run.config.model == "lstm_memory" and any(p.abs().sum() > 0 for p in run.model.memory.proj.parameters())


def test_frozen_trains_only_the_memory():
    model = models.create("lstm_memory", 50, {"dim": 32, "layers": 1, "heads": 4, "frozen": True})
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith("memory.") for name in trained)
    loss = model(torch.randint(0, 50, (2, 12)))[0].sum()
    loss.backward()
    assert model.lstm.weight_ih_l0.grad is None and model.memory.qkv.weight.grad is not None


def test_the_cache_brings_back_what_followed_a_moment_like_this_one():
    """A piece whose second half repeats its first: the cache, keyed by the LSTM's states,
    predicts the repeat (an untrained model cannot), and only within its window."""
    ids = torch.randint(0, 50, (1, 60), generator=torch.Generator().manual_seed(1))
    ids = torch.cat((ids, ids), dim=1)

    def repeat_nll(model) -> float:
        torch.manual_seed(1)  # an LSTM whose states tell recent inputs apart, as a trained one's do
        for p in [*model.embed.parameters(), *model.lstm.parameters()]:
            torch.nn.init.normal_(p, std=1.0)
        with torch.no_grad():
            logits, _ = model(ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits[0, 70:], ids[0, 71:]).item()

    every = {"cache_scale": 40, "cache_gap": 32, "cache_most": 1.0}  # every vote counted in full
    plain, cached = repeat_nll(small(8)), repeat_nll(small(8, cache_window=100, cache_sentinel=0.9, **every))
    too_short = repeat_nll(small(8, cache_window=30, **every))
    too_near = repeat_nll(small(8, cache_window=100, **every | {"cache_gap": 61}))  # the repeat is 60 back
    assert cached < 0.25 * plain and too_short > 0.9 * plain and too_near > 0.9 * plain
    with torch.no_grad():
        probs = small(8, cache_window=100)(ids)[0].exp().sum(-1)
    torch.testing.assert_close(probs, torch.ones_like(probs))  # still a distribution


def test_the_cache_takes_at_most_its_share_and_the_model_keeps_the_rest():
    """``cache_most``: where the cache would take over (a repeat it knows, a low sentinel), the
    model's own distribution still makes up the rest of every step, so a copy can vary."""
    ids = torch.randint(0, 50, (1, 60), generator=torch.Generator().manual_seed(1))
    ids = torch.cat((ids, ids), dim=1)
    options = {"cache_window": 100, "cache_scale": 40, "cache_sentinel": 0.5, "cache_gap": 32}
    with torch.no_grad():
        plain = torch.softmax(small(8)(ids)[0], -1)
        full = small(8, **options, cache_most=1.0)(ids)[0].exp()
        capped = small(8, **options, cache_most=0.6)(ids)[0].exp()
    assert (full[0, 70:] < 0.3 * plain[0, 70:]).any()  # uncapped, the cache crowds the model out
    assert (capped >= 0.4 * plain - 1e-6).all()
    torch.testing.assert_close(capped.sum(-1), torch.ones_like(capped.sum(-1)))
