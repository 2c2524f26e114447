"""The transformer model: KV cache equals the full pass, causality, weight tying,
parameter count, a real optimisation step, and ``last_only``."""
import pytest
import torch
import torch.nn.functional as F

from cadenza.models import count_parameters, create
from cadenza.models.transformer import TransformerModel

V, DIM, LAYERS, HEADS = 37, 32, 2, 4


def small(**kw):
    torch.manual_seed(0)
    options = dict(dim=DIM, layers=LAYERS, heads=HEADS, dropout=0.1, max_len=64)
    options.update(kw)
    return TransformerModel(V, **options).eval()


def ids(batch=2, length=13, seed=1):
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_cache_token_by_token_and_chunks_match_full_pass():
    model, x = small(), ids()
    full, _ = model(x)
    assert full.shape == (2, 13, V)

    # a prefix in one call, then the rest one token at a time
    out, state = model(x[:, :5])
    pieces = [out]
    for t in range(5, x.size(1)):
        out, state = model(x[:, t:t + 1], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    assert len(state) == LAYERS
    k, v = state[0]
    assert k.shape == v.shape == (2, HEADS, 13, DIM // HEADS)

    # chunks of 3 (the last one shorter), each appended to a non-empty cache
    state, pieces = None, []
    for t in range(0, x.size(1), 3):
        out, state = model(x[:, t:t + 3], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)

    # and from the very first token, one at a time
    state, pieces = None, []
    for t in range(x.size(1)):
        out, state = model(x[:, t:t + 1], state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_causal():
    model, x = small(), ids()
    y = x.clone()
    y[:, 8] = (y[:, 8] + 1) % V
    a, _ = model(x)
    b, _ = model(y)
    torch.testing.assert_close(a[:, :8], b[:, :8], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


@torch.no_grad()
def test_position_matters():
    """RoPE is applied: the same tokens in another order give other last logits."""
    model = small()
    x = torch.tensor([[1, 2, 3, 4, 5]])
    a, _ = model(x)
    b, _ = model(x.flip(1))
    assert not torch.allclose(a[:, -1], b[:, -1])


def expected_parameters(vocab, dim, layers, tied):
    per_layer = (2 * 2 * dim          # two LayerNorms (weight + bias)
                 + 3 * dim * dim      # qkv projection, no bias
                 + dim * dim          # attention output projection
                 + 2 * 4 * dim * dim)  # MLP up and down, no bias
    return vocab * dim + layers * per_layer + 2 * dim + (0 if tied else vocab * dim)


def test_tied_weights_and_parameter_count():
    model = small()
    assert model.out.weight is model.embed.weight
    assert count_parameters(model) == expected_parameters(V, DIM, LAYERS, tied=True)
    untied = small(tie_weights=False)
    assert untied.out.weight is not untied.embed.weight
    assert count_parameters(untied) == expected_parameters(V, DIM, LAYERS, tied=False)
    default = TransformerModel(V)
    assert count_parameters(default) == expected_parameters(V, 256, 4, tied=True)


def test_training_steps_lower_the_loss():
    model = small().train()
    x = ids(batch=4, length=16, seed=3)

    def loss():
        logits, _ = model(x[:, :-1])
        return F.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1))

    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        before = loss().item()
    model.train()
    for _ in range(10):
        opt.zero_grad()
        value = loss()
        value.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < before - 0.1, (before, after)


@torch.no_grad()
def test_last_only():
    model, x = small(), ids()
    full, _ = model(x)
    last, state = model(x, last_only=True)
    assert last.shape == (2, 1, V)
    torch.testing.assert_close(last, full[:, -1:], atol=1e-5, rtol=1e-5)
    assert state[0][0].size(2) == x.size(1)   # the cache still covers every input token


@torch.no_grad()
def test_max_len():
    model = small(max_len=8)
    _, state = model(ids(length=8))
    with pytest.raises(ValueError, match="max_len"):
        model(ids(length=1), state)
    with pytest.raises(ValueError, match="max_len"):
        model(ids(length=9))


def test_bad_head_split():
    with pytest.raises(ValueError):
        TransformerModel(V, dim=30, heads=4)


def test_registry():
    model = create("transformer", V, {"dim": 16, "layers": 1, "heads": 2})
    assert isinstance(model, TransformerModel) and model.trains_every_position
