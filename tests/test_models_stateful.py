"""Stateful models: a sequence fed in one call or token by token with the returned state
gives the same logits."""
import pytest
import torch

from cadenza.models.lstm import LSTMModel


@pytest.mark.parametrize("cache", [0, 6])
@torch.no_grad()
def test_lstm_stateful_matches_full_pass(cache):
    """Also with a continuous cache shorter than the sequence (it forgets, the same either way)."""
    torch.manual_seed(0)
    vocab = 29
    model = LSTMModel(vocab, dim=24, layers=2, dropout=0.2, cache_window=cache, cache_gap=2, cache_sentinel=0.5).eval()
    x = torch.randint(0, vocab, (3, 11), generator=torch.Generator().manual_seed(1))
    full, _ = model(x)
    assert full.shape == (3, 11, vocab)

    state, pieces = None, []
    for t in range(x.size(1)):
        out, state = model(x[:, t:t + 1], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)

    # a prefix in one call, then the rest one token at a time, with last_only
    out, state = model(x[:, :6], last_only=True)
    torch.testing.assert_close(out, full[:, 5:6], atol=1e-5, rtol=1e-5)
    for t in range(6, x.size(1)):
        out, state = model(x[:, t:t + 1], state)
        torch.testing.assert_close(out, full[:, t:t + 1], atol=1e-5, rtol=1e-5)


def _models(vocab):
    from cadenza.models.lstm_memory import LSTMMemoryModel
    from cadenza.models.transformer import TransformerModel
    from cadenza.seed.model import SeedLSTM

    return {"lstm": LSTMModel(vocab, dim=24, layers=2, dropout=0.0),
            "lstm+cache": LSTMModel(vocab, dim=24, layers=2, dropout=0.0, cache_window=8, cache_gap=2),
            "lstm_memory+cache": LSTMMemoryModel(vocab, dim=24, layers=2, heads=2, window=5, dropout=0.0,
                                                 cache_window=8, cache_gap=2),
            "transformer": TransformerModel(vocab, dim=24, layers=2, heads=2, max_len=64, dropout=0.0),
            "seed_lstm": SeedLSTM(vocab, hidden=16, layers=2, dense=8, dropout=0.0)}


@pytest.mark.parametrize("name", ["lstm", "lstm+cache", "lstm_memory+cache", "transformer", "seed_lstm"])
@torch.no_grad()
def test_select_rows_continues_the_chosen_sequences(name):
    """Rows picked from a batch's state (dropped, reordered, repeated) continue exactly as
    those sequences fed alone: what generation relies on when a piece is done. The memory
    models are fed past their windows first, so their tapes are picked mid-buffer."""
    torch.manual_seed(0)
    vocab = 31
    model = _models(vocab)[name].eval()
    x = torch.randint(0, vocab, (4, 20), generator=torch.Generator().manual_seed(2))
    _, state = model(x[:, :12])
    for t in range(12, 16):
        _, state = model(x[:, t:t + 1], state)
    index = torch.tensor([3, 1, 1])
    state = model.select_rows(state, index)
    _, alone = model(x[index, :16])
    for t in range(16, 20):
        out, state = model(x[index, t:t + 1], state)
        expected, alone = model(x[index, t:t + 1], alone)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
