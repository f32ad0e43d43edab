"""ADT-Tree controller: bounds, a hand-computed trace, column-0 fallback, end clamp, stateless = EAGLE-2."""
import random

import pytest

from adt_core.adt.controller import VARIANTS, ADTController, ADTParams
from adt_core.engine.sampling import SamplingConfig
from adt_core.pipeline import SpecOptions
from tiny_models import pipeline, tiny_draft, tiny_gpt


def drive(ctrl, grid, script):
    """Run the controller over a grid with scripted accepted-draft counts; return the (s, D, K) trace."""
    ctrl.reset(grid)
    n = grid[0] * grid[1]
    s, trace, i = 0, [], 0
    while s < n - 1:
        d, k = ctrl.plan(s, n - 1 - s)
        tau = min(script[i % len(script)], d)
        trace.append((s, d, k))
        ctrl.stamp(s, d, k, tau, d)
        s += tau + 1
        i += 1
    return trace


def test_bisect_trace_matches_hand_computation():
    # 4x4 grid, defaults D 2..8 (init 5), K 2..16 (init 10), beta 0.5
    trace = drive(ADTController(ADTParams()), (4, 4), [5, 0, 2, 5])
    assert trace == [
        (0, 5, 10),   # first token: neutral init; all 5 accepted -> alpha 1 on cells 0..5
        (6, 7, 6),    # left = cell 5, positive: D ceil((5+8)/2)=7, K (10+2)//2=6; 0 accepted -> alpha 0
        (7, 4, 11),   # left = cell 6, negative: D (7+2)//2=4, K ceil((6+16)/2)=11; 2 of 4 -> alpha 0.5
        (10, 5, 6),   # left = cell 9, positive: D ceil((4+8)/2)=6 clamped to the 5 tokens left, K 6
    ]


def test_trace_is_deterministic_for_every_variant():
    for v in VARIANTS:
        a = drive(ADTController(ADTParams(variant=v)), (6, 6), [3, 0, 1, 7, 2, 0, 0, 4])
        b = drive(ADTController(ADTParams(variant=v)), (6, 6), [3, 0, 1, 7, 2, 0, 0, 4])
        assert a == b, v


@pytest.mark.parametrize("variant", VARIANTS)
def test_bounds_always_respected(variant):
    p = ADTParams(depth_min=3, depth_max=7, width_min=2, width_max=9, depth_init=4, width_init=5, variant=variant)
    rng = random.Random(0)
    for trial in range(30):
        script = [rng.randint(0, 8) for _ in range(50)]
        ctrl = ADTController(p)
        for s, d, k in drive(ctrl, (8, 8), script):
            remaining = 63 - s
            assert 1 <= d <= min(p.depth_max, remaining)
            assert d >= min(p.depth_min, remaining)
            assert p.width_min <= k <= p.width_max


def test_column_zero_falls_back_to_the_cell_above():
    ctrl = ADTController(ADTParams())
    ctrl.reset((4, 4))
    d, k = ctrl.plan(0, 15)
    ctrl.stamp(0, d, k, 3, d)           # cells 0..3 = the whole first row, alpha 3/5 = 0.6 (positive)
    ctrl.depth[3], ctrl.width[3], ctrl.alpha[3] = 2, 16, 0.0   # make the far-right cell look "hard"
    # root at cell 4 = row 1, column 0: must use cell 0 (above), not cell 3 (end of the previous row)
    assert ctrl.plan(4, 11) == (7, 6)   # from (5, 10, 0.6): positive


def test_depth_clamped_at_the_end_of_the_image():
    ctrl = ADTController(ADTParams(depth_init=8, depth_max=8))
    ctrl.reset((2, 2))
    assert ctrl.plan(0, 3) == (3, 10)
    assert ctrl.plan(2, 1)[0] == 1


def test_stateless_variant_reproduces_eagle2_trees_exactly():
    gpt = tiny_gpt(grid=(5, 5), seed=8, std=0.2)
    pipe = pipeline(gpt, tiny_draft(gpt, seed=3, std=0.3))
    s = SamplingConfig(temperature=1.0, top_k=20, cfg_scale=3.0)
    e2 = pipe.generate([1, 2], SpecOptions("eagle2", depth=4, width=3, node_budget=9), s, seed=5, decode=False)
    st = pipe.generate([1, 2], SpecOptions("adt", adt_variant="none", adt_depth_init=4, adt_width_init=3,
                                           node_budget=9), s, seed=5, decode=False)
    assert st.tokens == e2.tokens
    for a, b in zip(st.stats, e2.stats):
        assert [(r.pos, r.depth, r.width, r.nodes, r.accepted) for r in a.rounds] == \
               [(r.pos, r.depth, r.width, r.nodes, r.accepted) for r in b.rounds]
