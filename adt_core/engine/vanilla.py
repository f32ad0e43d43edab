"""Plain autoregressive sampling with a static KV cache: the baseline and the no-draft fallback.

Semantics are LlamaGen's `generate()`: CFG batch (cond rows first) only when cfg_scale > 1, guidance
dropped after `cfg_interval`, temperature -> top-k -> top-p. All images of a batch decode together.
"""
from typing import List, Tuple

import torch

from .hooks import Hooks
from .sampling import SamplingConfig, guide, sample_token
from .stats import ImageStats


def guided_last(target, hidden: torch.Tensor, s: SamplingConfig, token_index: int) -> torch.Tensor:
    logits = target.logits(hidden[:, -1])
    return guide(logits, s.cfg_scale, s.cfg_active(token_index)) if s.use_cfg else logits


@torch.inference_mode()
def sample_vanilla(target, cond, s: SamplingConfig, generator: torch.Generator, hooks: Hooks,
                   settings: dict) -> Tuple[List[List[int]], List[ImageStats]]:
    labels = target.validate_condition(cond)
    b, n = labels.shape[0], target.n_tokens
    stats = [ImageStats("vanilla", *target.grid, settings=settings) for _ in range(b)]
    for st in stats:
        st.start()
    target.setup(b * (2 if s.use_cfg else 1), extra_slots=1)
    hidden = target.prefill(target.condition_batch(labels, s.use_cfg))
    tok = sample_token(guided_last(target, hidden, s, 0), s, generator)
    out = [tok]
    for st in stats:
        st.committed(0, 1)
    for k in range(1, n):
        hooks.tick(0, k, n, [int(t) for t in tok])
        hidden = target.forward(tok[:, None])
        target.commit(1)
        tok = sample_token(guided_last(target, hidden, s, k), s, generator)
        out.append(tok)
        for st in stats:
            st.committed(k, 1)
    tokens = torch.stack(out, dim=1).tolist()
    for i, st in enumerate(stats):
        st.stop(target.device)
        st.wall_seconds /= b  # the batch shared every forward
        hooks.tick(i, n, n, tokens[i])
    return tokens, stats
