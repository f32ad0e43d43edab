"""Model behaviour that official checkpoints rely on: RoPE quirk, cache == no cache, CFG, sampling filter."""
import torch
import torch.nn.functional as F

from adt_core.adapters.llamagen import LlamaGenTarget
from adt_core.engine.sampling import SamplingConfig, filter_logits, guide, probabilities
from adt_core.models.rope import apply_rope, rope_table_2d
from tiny_models import tiny_gpt


def test_rope_table_layout_and_zero_condition_rows():
    t = rope_table_2d(3, 3, 16, prefix=2, pad=1)
    assert t.shape == (2 + 9 + 1, 8, 2)
    assert t[:2].abs().sum() == 0 and t[-1].abs().sum() == 0
    # cell (r, c) = row 2 + 3r + c; first 4 pairs rotate by the row, last 4 by the column
    r, c = 2, 1
    row = t[2 + 3 * r + c]
    freqs = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
    assert torch.allclose(row[:4, 0], torch.cos(r * freqs)) and torch.allclose(row[4:, 1], torch.sin(c * freqs))
    # interleaved pairs: (x0, x1) rotate together; a zero row zeroes q and k
    x = torch.randn(1, 1, 1, 16)
    assert apply_rope(x, t[:1]).abs().sum() == 0
    out = apply_rope(x, t[2 + 3 * r + c: 3 + 3 * r + c])
    a, b = x[0, 0, 0, 0], x[0, 0, 0, 1]
    assert torch.allclose(out[0, 0, 0, 0], a * torch.cos(r * freqs[0]) - b * torch.sin(r * freqs[0]), atol=1e-6)


@torch.no_grad()
def test_cached_decoding_equals_uncached_forward():
    gpt = tiny_gpt(grid=(4, 4), seed=4)
    cond = torch.tensor([3, gpt.null_class])
    toks = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    full = gpt.training_forward(cond, toks)                       # [2, 16, V]
    t = LlamaGenTarget(gpt)
    t.setup(2, 8)
    steps = [t.logits(t.prefill(cond))[:, -1]]
    i = 0
    for n in (1, 3, 2, 5, 4):                                     # mixed chunk sizes, tree-style positions
        if i + n > 15:
            n = 15 - i
        h = t.forward(toks[:, i:i + n], torch.arange(n), torch.ones(n, n, dtype=torch.bool).tril())
        t.commit(n)
        steps.extend(t.logits(h).unbind(1))
        i += n
    cached = torch.stack(steps, 1)
    assert torch.allclose(cached, full, atol=1e-5)


@torch.no_grad()
def test_tree_forward_with_compaction_matches_plain_decoding():
    gpt = tiny_gpt(grid=(4, 4), seed=6)
    cond = torch.tensor([1, gpt.null_class])
    t = LlamaGenTarget(gpt)
    t.setup(2, 8)
    t.prefill(cond)
    # tree: root 5 -> {7 -> 9, 8}; keep path root, 8 (slot 2): KV must then equal decoding [5, 8]
    tokens = torch.tensor([[5, 7, 8, 9]])
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]], dtype=torch.bool)
    h = t.forward(tokens, torch.tensor([0, 1, 1, 2]), mask)
    t.keep([0, 2])
    nxt = t.logits(t.forward(torch.tensor([[4]])))
    ref = LlamaGenTarget(gpt)
    ref.setup(2, 8)
    ref.prefill(cond)
    for tok in (5, 8):
        hr = ref.forward(torch.tensor([[tok]]))
        ref.commit(1)
    assert torch.allclose(t.logits(h)[:, 2], ref.logits(hr)[:, 0], atol=1e-5)
    assert torch.allclose(nxt, ref.logits(ref.forward(torch.tensor([[4]]))), atol=1e-5)


def test_cfg_combination_matches_hand_formula():
    logits = torch.randn(4, 10)
    cond, uncond = logits[:2], logits[2:]
    assert torch.allclose(guide(logits, 3.0, True), uncond + 3.0 * (cond - uncond))
    assert torch.equal(guide(logits, 3.0, False), cond)


def upstream_filter(logits, temperature, top_k, top_p):
    """LlamaGen's sample(): /max(T,1e-5), keep >= k-th largest, nucleus with the first token kept."""
    logits = logits / max(temperature, 1e-5)
    if top_k > 0:
        logits = logits.masked_fill(logits < torch.topk(logits, top_k)[0][..., -1, None], float("-inf"))
    if top_p < 1.0:
        s, i = torch.sort(logits, descending=True)
        rm = torch.cumsum(F.softmax(s, -1), -1) > top_p
        rm[..., 1:] = rm[..., :-1].clone()
        rm[..., 0] = False
        logits = logits.masked_fill(rm.scatter(1, i, rm), float("-inf"))
    return logits


def test_filter_order_and_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(3, 50, generator=g)
        logits[:, 5] = logits[:, 6]                  # a tie at some rank
        for t, k, p in [(1.0, 10, 1.0), (0.7, 0, 0.8), (1.3, 20, 0.5), (1.0, 3, 0.9)]:
            assert torch.equal(filter_logits(logits, t, k, p), upstream_filter(logits, t, k, p))
    tie = torch.tensor([[3.0, 2.0, 2.0, 1.0]])
    assert torch.isfinite(filter_logits(tie, 1.0, 2, 1.0)).sum() == 3   # k-th value ties survive
    p = probabilities(torch.tensor([5.0, 0.0, -1.0]), SamplingConfig(top_p=0.01))
    assert p[0] == 1.0                                                  # top-p always keeps the first
