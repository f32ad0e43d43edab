"""Speculative sampling must draw from exactly the distribution plain sampling draws from.

The reference is computed by exact enumeration: on a 4-token vocabulary and a 2x2 grid there are 256
images, and the target's (guided, filtered) probability of each is a product of four conditionals.
"""
import itertools
from collections import Counter

import pytest
import torch

from adt_core.engine.sampling import SamplingConfig, guide, probabilities
from adt_core.engine.tree import Tree
from adt_core.engine.verify import verify_sample
from adt_core.pipeline import SpecOptions
from stats_util import chi_square_pvalue
from tiny_models import pipeline, tiny_draft, tiny_gpt

V, GRID = 4, (2, 2)


@torch.no_grad()
def exact_joint(gpt, label, s: SamplingConfig):
    """P(image) for every image under plain sampling, by enumeration with uncached forwards."""
    probs = {}
    n = GRID[0] * GRID[1]
    cond = torch.tensor([label, gpt.null_class]) if s.use_cfg else torch.tensor([label])
    for seq in itertools.product(range(V), repeat=n):
        toks = torch.tensor([list(seq)] * cond.shape[0])
        logits = gpt.training_forward(cond, toks)  # [R, n, V]: position i predicts token i
        p = 1.0
        for i in range(n):
            li = guide(logits[:, i], s.cfg_scale, s.cfg_active(i)) if s.use_cfg else logits[:, i]
            p *= float(probabilities(li[0], s)[seq[i]])
            if p == 0:
                break
        probs[seq] = p
    return probs


def model_pair():
    gpt = tiny_gpt(vocab=V, dim=32, n_layer=2, n_head=4, grid=GRID, seed=11, std=0.2)
    return gpt, tiny_draft(gpt, seed=4, std=0.3)


SETTINGS = [
    SamplingConfig(temperature=1.0, top_k=3, top_p=0.9, cfg_scale=2.0),
    SamplingConfig(temperature=0.7, top_k=0, top_p=0.8, cfg_scale=1.0),
    SamplingConfig(temperature=1.3, top_k=2, top_p=1.0, cfg_scale=3.0, cfg_interval=1),
]
METHODS = [SpecOptions("eagle2", depth=3, width=2, node_budget=4), SpecOptions("static", static_tree="auto-5"),
           SpecOptions("vanilla")]


@pytest.mark.parametrize("s", SETTINGS, ids=["topk+topp+cfg", "topp-nocfg", "topk-cfg-interval"])
@pytest.mark.parametrize("opt", METHODS, ids=lambda o: o.method)
def test_speculative_samples_match_exact_distribution(s, opt):
    gpt, draft = model_pair()
    pipe = pipeline(gpt, draft)
    ref = exact_joint(gpt, 3, s)
    n_samples = 2000
    out = pipe.generate([3] * n_samples, opt, s, seed=123, decode=False)
    counts = Counter(tuple(t) for t in out.tokens)
    stat, df, p = chi_square_pvalue(counts, ref)
    assert df >= 10  # a rich distribution, not a near-deterministic one
    assert p > 1e-3, f"chi2={stat:.1f} df={df} p={p:.2e}"
    if opt.method != "vanilla":  # the drafts were really used: some rounds accepted drafts
        assert sum(r.accepted > 1 for st in out.stats for r in st.rounds) > n_samples // 4


def test_chi_square_detects_a_wrong_distribution():
    """Negative control: the same samples tested against the distribution *without* top-p must fail."""
    gpt, draft = model_pair()
    s = SETTINGS[0]
    wrong = exact_joint(gpt, 3, SamplingConfig(temperature=1.0, top_k=3, top_p=1.0, cfg_scale=2.0))
    out = pipeline(gpt, draft).generate([3] * 2000, METHODS[0], s, seed=123, decode=False)
    assert chi_square_pvalue(Counter(tuple(t) for t in out.tokens), wrong)[2] < 1e-6


def test_verify_step_is_exact_per_node():
    """One verification step, many trials: the first committed token ~ p(root) and, after a child was
    committed, the next token ~ p(child). Synthetic logits, a 3-child root and grandchildren."""
    g = torch.Generator().manual_seed(0)
    vocab = 6
    tree = Tree([0, 2, 4, 1, 3, 5], [-1, 0, 0, 0, 1, 1])
    logits = torch.randn(tree.size, vocab, generator=g) * 1.5
    s = SamplingConfig(temperature=1.0, top_k=5, top_p=0.95, cfg_scale=1.0)
    first, second = Counter(), {c: Counter() for c in tree.children[0]}
    trials = 30000
    for _ in range(trials):
        path, bonus = verify_sample(tree, logits, s, g)
        committed = [tree.tokens[i] for i in path[1:]] + [bonus]
        first[committed[0]] += 1
        if len(path) > 1:
            second[path[1]][committed[1]] += 1
    p_root = probabilities(logits[0], s)
    assert chi_square_pvalue(first, {t: float(p_root[t]) for t in range(vocab)})[2] > 1e-3
    for c, cnt in second.items():
        pc = probabilities(logits[c], s)
        assert chi_square_pvalue(cnt, {t: float(pc[t]) for t in range(vocab)})[2] > 1e-3
