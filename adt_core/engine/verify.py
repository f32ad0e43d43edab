"""Verifying a draft tree against the target's logits: exact greedy and lossless stochastic rules.

Greedy: a node is accepted when its token is the argmax of its parent's guided logits; the committed
path is the deepest chain of accepted nodes; the bonus token is the argmax at its end. This reproduces
greedy decoding token for token.

Stochastic (EAGLE-2 multi-candidate rule, drafts are deterministic, i.e. q = one-hot): at an accepted node
with target distribution p, its children are tried in slot order; child x is accepted with probability
p(x) / Z where Z is the remaining mass; on rejection x is removed (p(x) = 0, Z -= p(x)). If all children are
rejected the bonus token is drawn from the residual. Each committed token is therefore an exact sample of
the target's (filtered) distribution: the output equals plain sampling in distribution.

`relax` (LANTERN, see lantern.py) optionally widens acceptance; without it both rules are exact.
"""
from typing import List, Optional, Tuple

import torch

from .sampling import SamplingConfig, probabilities
from .tree import Tree


def deepest_chain(tree: Tree, ok: List[bool]) -> List[int]:
    """Longest root-to-node chain of accepted nodes (ties: first in slot order)."""
    reach = [True] + [False] * (tree.size - 1)
    best = 0
    for i in range(1, tree.size):
        if ok[i] and reach[tree.parents[i]]:
            reach[i] = True
            if tree.depths[i] > tree.depths[best]:
                best = i
    path = [best]
    while path[-1] != 0:
        path.append(tree.parents[path[-1]])
    return path[::-1]


def verify_greedy(tree: Tree, guided: torch.Tensor, relax=None) -> Tuple[List[int], int]:
    """guided [n, V] logits per tree node -> (accepted path of node indices incl. root, bonus token)."""
    if relax is None:
        best = guided.argmax(dim=-1).tolist()
        ok = [False] + [tree.tokens[i] == best[tree.parents[i]] for i in range(1, tree.size)]
        path = deepest_chain(tree, ok)
        return path, best[path[-1]]
    ok = relax.greedy_ok(tree, guided)
    path = deepest_chain(tree, ok)
    return path, int(guided[path[-1]].argmax())


def verify_sample(tree: Tree, guided: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator,
                  relax=None) -> Tuple[List[int], int]:
    """guided [n, V] -> (accepted path incl. root, bonus token) by recursive rejection over siblings."""
    node, path = 0, [0]
    while True:
        p = probabilities(guided[node], sampling)
        kids = tree.children[node]
        accepted: Optional[int] = None
        if kids:
            u = torch.rand(len(kids), generator=generator, device=p.device).tolist()
            if relax is not None:
                accepted, p = relax.try_children(p, [tree.tokens[c] for c in kids], u)
                accepted = None if accepted is None else kids[accepted]
            else:
                accepted, p = _try_children_exact(p, [tree.tokens[c] for c in kids], u, kids)
        if accepted is None:
            return path, _draw(p, guided[node], sampling, generator)
        path.append(accepted)
        node = accepted


def _try_children_exact(p: torch.Tensor, tokens: List[int], u: List[float], kids: List[int]):
    z = 1.0
    vals = p[tokens].tolist()
    for j, (x, px) in enumerate(zip(tokens, vals)):
        if u[j] * z < px:
            return kids[j], p
        if px > 0:  # p is this call's own copy (probabilities() allocates), so edit in place
            p[x] = 0.0
            z -= px
    return None, p


def _draw(residual: torch.Tensor, logits: torch.Tensor, sampling: SamplingConfig,
          generator: torch.Generator) -> int:
    """Sample the bonus token from the residual; if rounding left no mass, from the unmodified p."""
    if float(residual.sum()) <= 1e-12:
        residual = probabilities(logits, sampling)
    return int(torch.multinomial(residual, 1, generator=generator))
