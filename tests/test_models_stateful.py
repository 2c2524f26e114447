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
