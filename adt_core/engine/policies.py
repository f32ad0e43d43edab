"""Tree policies: which tree to draft each round.

API: prepare(drafter, rows) once; reset(grid) per image; grow(drafter, root_out, root_token, root_index, remaining) -> (Tree, width);
observe(root_index, tree, accepted_drafts) after verification; max_tree_size()/max_scratch() for caches.
Every policy caps tree depth at `remaining` (tokens left after the root), so no node lies past the image.
"""
from typing import Dict, Sequence

from ..errors import InputError
from .budget import AutoBudget
from .drafting import grow_dynamic, grow_static, max_nodes
from .tree import StaticShape


class StaticPolicy:
    name = "static"

    def __init__(self, choices: Sequence[Sequence[int]]):
        self.full = StaticShape.from_choices(choices)
        self._shapes: Dict[int, StaticShape] = {self.full.max_depth: self.full}
        self.choices = [list(c) for c in choices]

    def prepare(self, drafter, rows: int) -> None:
        pass

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
    """EAGLE-2 dynamic trees. Without a controller every round uses the same depth and width; with one
    (ADT-Tree) the controller plans each round from the image's neighbourhood and learns from the outcome.
    `budget` is a FixedBudget or an AutoBudget (cost-aware, chosen per round)."""

    def __init__(self, depth: int, width: int, budget, controller=None, name: str = "eagle2"):
        if depth < 1 or width < 1:
            raise InputError(f"tree depth and width must be >= 1 (got {depth}, {width})")
        self.depth, self.width, self.budget = depth, width, budget
        self.controller, self.name = controller, name
        if controller is not None:
            self.depth, self.width = controller.p.depth_max, controller.p.width_max
        self._planned = (depth, width)

    def prepare(self, drafter, rows: int) -> None:
        """Before the first image: a cost-aware budget profiles this draft head once."""
        if isinstance(self.budget, AutoBudget):
            self.budget.profile_drafter(drafter, rows)

    def reset(self, grid) -> None:
        if self.controller is not None:
            self.controller.reset(grid)

    def max_tree_size(self) -> int:
        return min(self.budget.cap, max_nodes(self.depth, self.width)) + 1

    def max_scratch(self) -> int:
        return max(self.depth - 1, 0) * self.width

    def grow(self, drafter, root_out, root_token: int, root: int, remaining: int):
        if self.controller is not None:
            d, k = self.controller.plan(root, remaining)
        else:
            d, k = min(self.depth, remaining), self.width
        self._planned = (d, k)
        return grow_dynamic(drafter, root_out, root_token, d, k, self.budget), k

    def observe(self, root: int, tree, accepted: int) -> None:
        self.budget.observe(tree, accepted)
        if self.controller is not None:
            d, k = self._planned
            self.controller.stamp(root, d, k, accepted, tree.max_depth)

    def describe(self) -> dict:
        d = {"node_budget": self.budget.describe()}
        if self.controller is None:
            d.update(depth=self.depth, width=self.width)
        return d
