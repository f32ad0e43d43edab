"""Greedy speculative decoding must reproduce greedy vanilla decoding token for token."""
import pytest

from adt_core.engine.sampling import SamplingConfig
from adt_core.pipeline import SpecOptions
from tiny_models import markov_gpt, oracle_draft, pipeline, tiny_draft, tiny_gpt

TREES = [
    SpecOptions("eagle2", depth=3, width=2, node_budget=5),
    SpecOptions("eagle2", depth=6, width=4, node_budget=30),
    SpecOptions("eagle2", depth=8, width=8, node_budget=60),
    SpecOptions("static", static_tree="auto-6"),
    SpecOptions("static", static_tree="auto-25"),
    SpecOptions("static", static_tree="[[0],[1],[2],[0,0],[0,1],[1,0],[0,0,0],[0,0,0,0]]"),
]


@pytest.mark.parametrize("cfg_scale,cfg_interval", [(4.0, -1), (1.0, -1), (3.0, 5)])
@pytest.mark.parametrize("opt", TREES, ids=lambda o: f"{o.method}-{o.depth}-{o.width}-{o.static_tree[:8]}")
def test_random_draft_matches_vanilla(opt, cfg_scale, cfg_interval):
    gpt = tiny_gpt(grid=(5, 5), seed=3)
    pipe = pipeline(gpt, tiny_draft(gpt))
    s = SamplingConfig(temperature=0, cfg_scale=cfg_scale, cfg_interval=cfg_interval)
    ref = pipe.generate([1, 7], SpecOptions("vanilla"), s, decode=False).tokens
    assert pipe.generate([1, 7], opt, s, decode=False).tokens == ref


@pytest.mark.parametrize("opt", TREES[:3] + TREES[4:5], ids=["e2-small", "e2-mid", "e2-big", "static25"])
@pytest.mark.parametrize("cfg_scale", [4.0, 1.0])
def test_good_draft_matches_vanilla_with_long_acceptances(opt, cfg_scale):
    """A near-oracle draft (target attention slightly on) accepts often but not always: both the accept
    and the reject paths of the verifier and the KV compaction are exercised."""
    gpt = markov_gpt(grid=(6, 6), attn_scale=0.006, seed=5)
    pipe = pipeline(gpt, oracle_draft(markov_gpt(grid=(6, 6), attn_scale=0.0, seed=5)))
    s = SamplingConfig(temperature=0, cfg_scale=cfg_scale)
    ref = pipe.generate([2, 4], SpecOptions("vanilla"), s, decode=False).tokens
    out = pipe.generate([2, 4], opt, s, decode=False)
    assert out.tokens == ref
    assert max(st.mean_accepted_length for st in out.stats) > 1.5


@pytest.mark.parametrize("depth", [2, 5])
def test_perfect_draft_accepts_every_token(depth):
    gpt = markov_gpt(grid=(5, 5), seed=2)
    pipe = pipeline(gpt, oracle_draft(gpt))
    s = SamplingConfig(temperature=0, cfg_scale=4.0)
    out = pipe.generate([0], SpecOptions("eagle2", depth=depth, width=3, node_budget=12), s, decode=False)
    assert out.tokens == pipe.generate([0], SpecOptions("vanilla"), s, decode=False).tokens
    st = out.stats[0]
    n = 25
    for r in st.rounds:  # every round accepts its whole depth (the last ones are capped by the image end)
        assert r.accepted == min(depth, n - 1 - r.pos) + 1 or r.pos + r.accepted == n
    assert all(r.accepted == depth + 1 for r in st.rounds[:-1])
    assert st.target_forwards == 1 + len(st.rounds)
    assert sum(st.grid) == n
