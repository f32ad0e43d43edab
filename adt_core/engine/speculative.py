"""Tree speculative sampling: draft a tree, verify it in one target forward, commit the accepted path.

One image at a time (batch 1, two CFG rows); a batch of B labels runs B such loops. A `policy` decides
each round's tree (static shape, fixed EAGLE-2 sizes, or the ADT-Tree controller) and learns from the
outcome. Per round, with root = the last committed token at image index s:
  1. grow a tree with the drafter (its last output predicts token s+1);
  2. run the target once on all tree nodes (RoPE positions length + depth, ancestor mask);
  3. verify (greedy or stochastic, optionally LANTERN-relaxed) -> path root..last accepted + bonus token;
  4. keep the path's KV slots, feed its hidden states to the drafter, and continue from the bonus token.
"""
from typing import List, Tuple

import torch

from .drafter import Drafter
from .hooks import Hooks
from .sampling import SamplingConfig, guide
from .stats import ImageStats, RoundTrace
from .vanilla import guided_last
from .sampling import sample_token
from .verify import verify_greedy, verify_sample


def node_logits(target, hidden: torch.Tensor, s: SamplingConfig, depths: torch.Tensor, root_index: int):
    """Guided logits [n, V] per tree node; node at depth d predicts image token root_index + d + 1."""
    logits = target.logits(hidden)
    if not s.use_cfg:
        return logits[0]
    if s.cfg_interval > -1:
        active = torch.tensor([s.cfg_active(root_index + int(d) + 1) for d in depths.tolist()],
                              device=logits.device)
        return guide(logits, s.cfg_scale, active[None])[0]
    return guide(logits, s.cfg_scale, True)[0]


@torch.inference_mode()
def sample_speculative_one(target, drafter: Drafter, policy, label: torch.Tensor, s: SamplingConfig,
                           generator: torch.Generator, hooks: Hooks, stats: ImageStats, image: int,
                           relax=None) -> List[int]:
    n = target.n_tokens
    rows = 2 if s.use_cfg else 1
    target.setup(rows, extra_slots=policy.max_tree_size() + 1)
    drafter.setup(rows, scratch=policy.max_scratch() + 1)
    policy.reset(target.grid)
    stats.start()
    hidden = target.prefill(target.condition_batch(label, s.use_cfg))
    tokens = [int(sample_token(guided_last(target, hidden, s, 0), s, generator)[0])]
    stats.committed(0, 1)
    root_out = drafter.extend(hidden, target.draft_prefix_tokens() + tokens)
    while len(tokens) < n:
        hooks.tick(image, len(tokens), n, tokens)
        root = len(tokens) - 1
        tree, width = policy.grow(drafter, root_out, tokens[-1], root, n - 1 - root)
        dev = target.device
        depths = torch.tensor(tree.depths, device=dev)
        hidden = target.forward(torch.tensor([tree.tokens], device=dev), depths, tree.mask(dev))
        guided = node_logits(target, hidden, s, depths, root)
        if s.greedy:
            path, bonus = verify_greedy(tree, guided, relax)
        else:
            path, bonus = verify_sample(tree, guided, s, generator, relax)
        target.keep(path)
        new = [tree.tokens[i] for i in path[1:]] + [bonus]
        new = new[: n - len(tokens)]
        stats.committed(len(tokens), len(new))
        stats.rounds.append(RoundTrace(root, tree.max_depth, width, tree.size - 1, len(new)))
        policy.observe(root, tree, len(path) - 1)
        tokens.extend(new)
        if len(tokens) < n:
            root_out = drafter.extend(hidden[:, path], new)
    stats.draft_forwards = drafter.forwards
    stats.stop(target.device)
    hooks.tick(image, n, n, tokens)
    return tokens


def sample_speculative(target, drafter: Drafter, policy, cond, s: SamplingConfig, generator: torch.Generator,
                       hooks: Hooks, method: str, settings: dict,
                       relax=None) -> Tuple[List[List[int]], List[ImageStats]]:
    labels = target.validate_condition(cond)
    all_tokens, all_stats = [], []
    for i in range(labels.shape[0]):
        st = ImageStats(method, *target.grid, settings=settings)
        all_tokens.append(sample_speculative_one(target, drafter, policy, labels[i:i + 1], s, generator, hooks,
                                                 st, i, relax))
        all_stats.append(st)
    return all_tokens, all_stats
