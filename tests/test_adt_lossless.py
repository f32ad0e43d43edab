"""ADT-Tree (with and without the cost-aware budget) is exact: greedy equality and the sampling test."""
from collections import Counter

import pytest

from adt_core.engine.sampling import SamplingConfig
from adt_core.pipeline import SpecOptions
from stats_util import chi_square_pvalue
from test_lossless_sampling import SETTINGS, exact_joint, model_pair
from tiny_models import markov_gpt, oracle_draft, pipeline


@pytest.mark.parametrize("variant", ["bisect", "step", "binary", "length", "window", "2d"])
@pytest.mark.parametrize("cfg_scale", [4.0, 1.0])
def test_adt_greedy_equals_vanilla(variant, cfg_scale):
    gpt = markov_gpt(grid=(6, 6), attn_scale=0.006, seed=5)
    pipe = pipeline(gpt, oracle_draft(markov_gpt(grid=(6, 6), attn_scale=0.0, seed=5)))
    s = SamplingConfig(temperature=0, cfg_scale=cfg_scale)
    ref = pipe.generate([2, 4], SpecOptions("vanilla"), s, decode=False).tokens
    for budget in (20, "auto"):
        out = pipe.generate([2, 4], SpecOptions("adt", adt_variant=variant, node_budget=budget), s, decode=False)
        assert out.tokens == ref
        rounds = [r for st in out.stats for r in st.rounds]
        assert len({r.width for r in rounds}) > 1          # the controller really adapted the width...
        if budget == 20:                                   # ...and, with a fixed budget, the depth built
            assert len({r.depth for r in rounds}) > 1


def test_adt_sampling_matches_exact_distribution():
    gpt, draft = model_pair()
    s = SETTINGS[0]
    out = pipeline(gpt, draft).generate([3] * 2000, SpecOptions("adt", adt_depth_min=1, adt_depth_max=3,
                                                               adt_width_min=1, adt_width_max=3, node_budget=5),
                                        s, seed=321, decode=False)
    stat, df, p = chi_square_pvalue(Counter(tuple(t) for t in out.tokens), exact_joint(gpt, 3, s))
    assert df >= 10 and p > 1e-3, f"chi2={stat:.1f} df={df} p={p:.2e}"
