"""Growing draft trees with the drafter: EAGLE-2 dynamic trees and static (EAGLE-1 style) trees.

Both take their size per call, so an adaptive controller (ADT-Tree) can change depth, width and node
budget every round. Depth counts draft levels (a depth-D tree commits up to D+1 tokens per round) and
costs D draft-head forwards: one for the new committed positions, D-1 expansions.
"""
import torch

from .drafter import Drafter
from .tree import StaticShape, Tree


def max_nodes(depth: int, width: int) -> int:
    """Candidates an EAGLE-2 tree of this depth and width can hold (the reranking limit)."""
    return width + (depth - 1) * width * width


def grow_dynamic(drafter: Drafter, root_out: torch.Tensor, root_token: int, depth: int, width: int,
                 budget) -> Tree:
    """EAGLE-2: expand the `width` best nodes (by cumulative draft log-prob) per level, then keep the
    global best nodes. Nodes whose draft score is -inf (outside top-k/top-p) are dropped.

    `budget` (FixedBudget or AutoBudget) decides how many nodes are kept and may stop the expansion early
    when no deeper node could pay for another draft pass."""
    device = root_out.device
    budget.start_round(width)
    scores, toks = drafter.top(root_out, 1, width)
    scores, toks = scores[0], toks[0]
    width = toks.shape[0]
    cand_tokens, cand_scores = [toks], [scores]
    cand_parents = [torch.full((width,), -1, device=device)]
    fed_global = torch.arange(width, device=device)
    fed_scores, fed_tokens = scores, toks
    feats = root_out.expand(-1, width, -1)
    eye = torch.eye(width, dtype=torch.bool, device=device)
    fed_mask = eye
    offset = width
    for level in range(1, depth):
        if not budget.worth_expanding(torch.cat(cand_scores), _levels(cand_scores), fed_scores, level + 1, width):
            break
        out = drafter.expand(feats, fed_tokens, fed_mask, level)
        budget.expanded(width)
        tp, tk = drafter.top(out, level + 1, width)
        cu = (tp + fed_scores[:, None]).flatten()
        cand_tokens.append(tk.flatten())
        cand_scores.append(cu)
        cand_parents.append(fed_global.repeat_interleave(width))
        if level + 1 < depth:
            best = cu.topk(width).indices
            rows = best // width
            fed_global, fed_scores, fed_tokens = offset + best, cu[best], tk.flatten()[best]
            feats = out[:, rows]
            fed_mask = torch.cat([fed_mask[rows], eye], dim=1)
        offset += width * width
    all_scores = torch.cat(cand_scores)
    depths = _levels(cand_scores)
    ranked, order = all_scores.sort(descending=True)
    finite = torch.isfinite(ranked)
    n = budget(ranked[finite].tolist(), depths[order[finite]].tolist())
    keep = all_scores.topk(max(1, min(n, all_scores.numel()))).indices.sort().values
    keep = keep[torch.isfinite(all_scores[keep])]
    return _assemble(root_token, keep.tolist(), torch.cat(cand_tokens)[keep].tolist(),
                     torch.cat(cand_parents)[keep].tolist(), all_scores[keep].tolist())


def _levels(cand_scores) -> torch.Tensor:
    """Tree level (1-based) of every candidate, in candidate order."""
    return torch.cat([torch.full((c.numel(),), i + 1, dtype=torch.long, device=c.device)
                      for i, c in enumerate(cand_scores)])


def _assemble(root_token: int, glob, tokens, parents, scores) -> Tree:
    """Map candidate indices to tree slots; drop nodes whose parent was not kept (only possible on ties)."""
    slot = {-1: 0}
    out_tokens, out_parents, out_scores = [root_token], [-1], [0.0]
    for g, t, p, s in zip(glob, tokens, parents, scores):
        if p in slot:
            slot[g] = len(out_tokens)
            out_tokens.append(t)
            out_parents.append(slot[p])
            out_scores.append(s)
    return Tree(out_tokens, out_parents, scores=out_scores)


def grow_static(drafter: Drafter, root_out: torch.Tensor, root_token: int, shape: StaticShape) -> Tree:
    """EAGLE-1 static tree: node i is the ranks[i]-th best child of its parent under the drafter."""
    device = root_out.device
    tokens = [root_token] + [0] * (shape.size - 1)
    top1 = drafter.top(root_out, 1, shape.topk[1])[1][0].tolist()
    level_nodes = {}
    for i in range(1, shape.size):
        level_nodes.setdefault(shape.depths[i], []).append(i)
    for i in level_nodes[1]:
        tokens[i] = top1[shape.ranks[i]]
    out_of = {i: (root_out, 0) for i in level_nodes[1]}  # node -> (tensor holding its parent's output, row)
    fed_row_mask = {}
    prev_cols = 0
    for level in range(1, shape.max_depth):
        fed = shape.fed.get(level, [])
        if not fed:
            break
        feats = torch.cat([out_of[i][0][:, out_of[i][1]:out_of[i][1] + 1] for i in fed], dim=1)
        k = len(fed)
        mask = torch.zeros(k, prev_cols + k, dtype=torch.bool, device=device)
        for r, i in enumerate(fed):
            par = shape.parents[i]
            if par in fed_row_mask:
                mask[r, :prev_cols] = fed_row_mask[par]
            mask[r, prev_cols + r] = True
        fed_row_mask = {i: mask[r] for r, i in enumerate(fed)}
        prev_cols += k
        out = drafter.expand(feats, torch.tensor([tokens[i] for i in fed], device=device), mask, level)
        tops = drafter.top(out, level + 1, shape.topk[level + 1])[1].tolist()
        row = {i: r for r, i in enumerate(fed)}
        for i in level_nodes.get(level + 1, []):
            par = shape.parents[i]
            tokens[i] = tops[row[par]][shape.ranks[i]]
            out_of[i] = (out, row[par])
    return Tree(tokens, shape.parents, shape.depths)
