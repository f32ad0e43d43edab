"""Cost-aware node budget: the choice follows cost and confidence, and it is reproducible."""
import math

from adt_core.engine.budget import AutoBudget, CostModel
from adt_core.engine.sampling import SamplingConfig
from adt_core.pipeline import SpecOptions
from tiny_models import pipeline, tiny_draft, tiny_gpt


def test_budget_grows_when_verification_is_cheap_and_drafts_confident():
    scores = [math.log(0.9 ** i) for i in range(1, 40)]          # confident, slowly decaying
    flat = AutoBudget(CostModel([1, 64], [1.0, 1.0]))             # a GPU: size barely matters
    steep = AutoBudget(CostModel([1, 64], [1.0, 64.0]))           # a CPU: cost grows with every token
    d = [1] * 40
    assert flat(scores, d) == len(scores)
    assert steep(scores, d) < 6
    unsure = [math.log(0.05)] * 30
    assert AutoBudget(CostModel([1, 64], [1.0, 2.0]))(unsure, d) < flat(scores, d)


def test_sunk_draft_cost_favours_using_the_tree():
    scores = [math.log(0.5 ** i) for i in range(1, 20)]
    b = AutoBudget(CostModel([1, 64], [1.0, 8.0]))
    d = [1] * 19
    cheap = b(scores, d)
    b.draft = CostModel([1, 16], [1.0, 1.0])
    b.start_round(4)
    for _ in range(7):                                            # 8 seconds of drafting already spent
        b.expanded(4)
    assert b(scores, d) >= cheap


def test_expansion_stops_when_deeper_nodes_cannot_pay_for_a_draft_pass():
    import torch
    b = AutoBudget(CostModel([1, 64], [1.0, 4.0]))
    b.draft = CostModel([1, 16], [0.3, 0.3])
    b.start_round(4)
    ones = torch.ones(4, dtype=torch.long)
    confident = torch.log(torch.tensor([0.9, 0.05, 0.03, 0.02]))
    assert b.worth_expanding(confident, ones, confident[:1], 2, 4)   # a 0.9-likely path: draft deeper
    hopeless = torch.log(torch.tensor([0.02, 0.01, 0.01, 0.01]))
    assert not b.worth_expanding(hopeless, ones, hopeless, 2, 4)     # 5% total mass below: stop here


def test_calibration_learns_that_greedy_accepts_more_than_draft_probabilities_say():
    from adt_core.engine.tree import Tree
    b = AutoBudget(CostModel([1, 64], [1.0, 2.0]))
    before = b._p(math.log(0.3), 1)
    tree = Tree([0, 1, 2], [-1, 0, 1], scores=[0.0, math.log(0.3), math.log(0.1)])
    for _ in range(20):
        b.observe(tree, 2)          # both drafted levels accepted every time
    assert b._p(math.log(0.3), 1) > 2 * before and b._p(math.log(0.3), 2) == 1.0


def test_auto_budget_is_reproducible_for_a_seed():
    gpt = tiny_gpt(grid=(5, 5), seed=8, std=0.2)
    s = SamplingConfig(temperature=1.0, top_k=20, cfg_scale=3.0)
    runs = [pipeline(gpt, tiny_draft(gpt, seed=3, std=0.3)).generate(
        [1, 2], SpecOptions("adt", node_budget="auto"), s, seed=11, decode=False) for _ in range(2)]
    assert runs[0].tokens == runs[1].tokens
    assert [[(r.pos, r.nodes) for r in st.rounds] for st in runs[0].stats] == \
           [[(r.pos, r.nodes) for r in st.rounds] for st in runs[1].stats]
