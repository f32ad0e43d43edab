"""Tree policies: which tree to draft each round. ADT-Tree's controller lives in adt/ and uses the same API.

API: reset(grid) per image; grow(drafter, root_out, root_token, root_index, remaining) -> (Tree, width);
observe(root_index, tree, accepted_drafts) after verification; max_tree_size()/max_scratch() for caches.
Every policy caps tree depth at `remaining` (tokens left after the root), so no node lies past the image.
"""
from typing import Dict, Sequence

from .drafting import grow_dynamic, grow_static, max_nodes
from .tree import StaticShape


class StaticPolicy:
    name = "static"

    def __init__(self, choices: Sequence[Sequence[int]]):
        self.full = StaticShape.from_choices(choices)
        self._shapes: Dict[int, StaticShape] = {self.full.max_depth: self.full}
        self.choices = [list(c) for c in choices]

    def reset(self, grid) -> None:
        pass

    def max_tree_size(self) -> int:
        return self.full.size

    def max_scratch(self) -> int:
        return sum(len(v) for v in self.full.fed.values())

    def grow(self, drafter, root_out, root_token: int, root: int, remaining: int):
        depth = min(self.full.max_depth, remaining)
        if depth not in self._shapes:
            self._shapes[depth] = StaticShape.from_choices(self.choices, max_depth=depth)
        return grow_static(drafter, root_out, root_token, self._shapes[depth]), 0

    def observe(self, root: int, tree, accepted: int) -> None:
        pass

    def describe(self) -> dict:
        return {"tree_nodes": self.full.size - 1, "tree_depth": self.full.max_depth}


class DynamicPolicy:
    """EAGLE-2: the same depth, width and node budget every round."""
    name = "eagle2"

    def __init__(self, depth: int, width: int, budget: int):
        if depth < 1 or width < 1 or budget < 1:
            raise ValueError(f"EAGLE-2 tree needs depth, width and budget >= 1 (got {depth}, {width}, {budget})")
        self.depth, self.width, self.budget = depth, width, budget

    def reset(self, grid) -> None:
        pass

    def max_tree_size(self) -> int:
        return min(self.budget, max_nodes(self.depth, self.width)) + 1

    def max_scratch(self) -> int:
        return max(self.depth - 1, 0) * self.width

    def grow(self, drafter, root_out, root_token: int, root: int, remaining: int):
        d = min(self.depth, remaining)
        return grow_dynamic(drafter, root_out, root_token, d, self.width,
                            min(self.budget, max_nodes(d, self.width))), self.width

    def observe(self, root: int, tree, accepted: int) -> None:
        pass

    def describe(self) -> dict:
        return {"depth": self.depth, "width": self.width, "node_budget": self.budget}
