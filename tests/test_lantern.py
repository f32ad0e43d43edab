"""LANTERN: delta = 0 is exact acceptance; the relaxed per-step distribution stays within TVD delta."""
from collections import Counter

import pytest
import torch

from adt_core.engine.sampling import SamplingConfig
from adt_core.engine.tree import Tree
from adt_core.engine.verify import _try_children_exact, verify_greedy
from adt_core.engine.lantern import Lantern, neighbour_table
from adt_core.pipeline import SpecOptions
from tiny_models import pipeline, tiny_draft, tiny_gpt, tiny_vq

V = 24


def ring_table(v=V, k=8):
    """Neighbours on a ring: n_1 = x+1, n_2 = x-1, n_3 = x+2, ... (a known, hand-checkable table)."""
    rows = []
    for x in range(v):
        row = []
        for d in range(1, k):
            row += [(x + d) % v, (x - d) % v]
        rows.append(row[:k])
    return torch.tensor(rows)


def outcome_distribution(lantern, p, children, trials, seed):
    g = torch.Generator().manual_seed(seed)
    counts = Counter()
    for _ in range(trials):
        u = torch.rand(len(children), generator=g).tolist()
        j, residual = lantern.try_children(p.clone(), children, u)
        counts[children[j] if j is not None else int(torch.multinomial(residual, 1, generator=g))] += 1
    return torch.tensor([counts[t] / trials for t in range(V)])


def synthetic_p(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(V, generator=g) * 0.6, 0)


def test_neighbour_table_on_normalised_codes():
    g = torch.Generator().manual_seed(1)
    codes = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    table = neighbour_table(codes, 6, chunk=16)
    d = torch.cdist(codes, codes)
    d.fill_diagonal_(float("inf"))
    assert torch.equal(table, d.topk(6, largest=False).indices)
    assert not (table == torch.arange(50)[:, None]).any()


def test_vq_codebook_neighbours_use_the_normalised_rows():
    vq = tiny_vq(codebook=64)
    raw = vq.quantize.embedding.weight.detach()
    vq.quantize.embedding.weight.data = raw * torch.linspace(0.5, 3, 64)[:, None]  # same directions, new norms
    assert torch.equal(neighbour_table(vq.quantize.codebook(), 5), neighbour_table(
        torch.nn.functional.normalize(raw, dim=1), 5))


def test_delta_zero_is_exact_acceptance():
    p = synthetic_p()
    lan = Lantern(ring_table(), k=6, delta=0.0)
    g = torch.Generator().manual_seed(3)
    children = [3, 7, 11]
    for _ in range(300):
        u = torch.rand(3, generator=g).tolist()
        a = lan.try_children(p.clone(), children, u)
        b = _try_children_exact(p.clone(), children, u, [0, 1, 2])
        assert a[0] == b[0] and torch.equal(a[1], b[1])


@pytest.mark.parametrize("delta", [0.05, 0.15, 0.3])
def test_relaxed_step_stays_within_tvd_delta(delta):
    p = synthetic_p(1)
    children = [int(i) for i in p.topk(3).indices] + [0]  # three likely drafts and one arbitrary
    lan = Lantern(ring_table(), k=6, delta=delta)
    trials = 40000
    q = outcome_distribution(lan, p, children, trials, seed=7)
    tvd = 0.5 * (q - p).abs().sum().item()
    assert tvd <= delta + 0.02, tvd           # sampling error of 40k draws over 24 cells is ~0.01
    assert tvd >= 0.5 * delta                 # and the relaxation really moved mass (the test can fail)


def test_exact_rule_is_unbiased_for_contrast():
    p = synthetic_p(1)
    children = [int(i) for i in p.topk(3).indices] + [0]
    q = outcome_distribution(Lantern(ring_table(), k=6, delta=0.0), p, children, 40000, seed=7)
    assert 0.5 * (q - p).abs().sum().item() < 0.02


def test_greedy_relaxation_by_hand():
    # parent distribution: token 0 is the argmax (0.30); draft token 1 (0.25) has neighbours 2 (0.2), 0 (0.3)
    probs = torch.tensor([0.30, 0.25, 0.20, 0.15, 0.10])
    logits = probs.log()[None].repeat(2, 1)
    table = torch.tensor([[1, 2, 3, 4], [2, 0, 3, 4], [1, 3, 0, 4], [2, 4, 1, 0], [3, 2, 1, 0]])
    tree = Tree([9, 1], [-1, 0])
    assert verify_greedy(tree, logits)[0] == [0]                                        # exact: rejected
    assert verify_greedy(tree, logits, Lantern(table, k=2, delta=0.1))[0] == [0]        # 0.2 > 0.1: m = 0
    path, bonus = verify_greedy(tree, logits, Lantern(table, k=2, delta=0.25))
    assert path == [0, 1] and bonus == 0                                                # 0.25+0.2 >= 0.3
    assert verify_greedy(tree, logits, Lantern(table, k=2, lam=1.5))[0] == [0]          # budget 0.125
    assert verify_greedy(tree, logits, Lantern(table, k=2, lam=2.0))[0] == [0, 1]       # budget 0.25


@pytest.mark.parametrize("method", ["adt", "eagle2", "static"])
def test_lantern_in_generation_delta_zero_matches_exact_sampling(method):
    """LANTERN works with every tree: delta 0 gives the exact sampler's tokens; delta 0.3 saves forwards."""
    gpt = tiny_gpt(vocab=64, grid=(4, 4), seed=2, std=0.2)
    pipe = pipeline(gpt, tiny_draft(gpt), tiny_vq(codebook=64))
    s = SamplingConfig(temperature=1.0, top_k=30, cfg_scale=2.0)
    labels = [1, 2, 3, 4, 5, 6]
    plain = pipe.generate(labels, SpecOptions(method), s, seed=9, decode=False)
    zero = pipe.generate(labels, SpecOptions(method, lantern_k=10, lantern_delta=0.0), s, seed=9, decode=False)
    assert zero.tokens == plain.tokens
    assert zero.stats[0].method == f"{method}+lantern"
    relaxed = pipe.generate(labels, SpecOptions(method, lantern_k=10, lantern_delta=0.3), s, seed=9, decode=False)
    assert sum(st.target_forwards for st in relaxed.stats) < sum(st.target_forwards for st in plain.stats)
