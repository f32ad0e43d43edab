"""Sampling settings and the one logits filter used by every path (vanilla, verification, drafting).

Order and semantics follow LlamaGen `autoregressive/models/generate.py`: CFG combine, then temperature,
then top-k (keep logits >= the k-th largest, so ties survive), then top-p (drop tokens whose cumulative
probability exceeds p, always keeping the first). Temperature 0 means greedy (argmax of guided logits).
"""
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    cfg_scale: float = 4.0
    cfg_interval: int = -1

    def __post_init__(self):
        if self.temperature < 0:
            raise InputError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.cfg_scale < 0:
            raise InputError(f"cfg_scale must be >= 0, got {self.cfg_scale}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def use_cfg(self) -> bool:
        """LlamaGen runs the unconditional batch only when cfg_scale > 1."""
        return self.cfg_scale > 1.0

    def cfg_active(self, token_index: int) -> bool:
        """Whether guidance applies to the logits that predict image token `token_index`.

        Upstream decodes token k (k >= 1) at loop step i = k - 1 and drops guidance when
        cfg_interval > -1 and i > cfg_interval; the first token (prefill) is always guided.
        """
        return token_index == 0 or not (self.cfg_interval > -1 and token_index - 1 > self.cfg_interval)

    def to_dict(self) -> dict:
        return asdict(self)


def guide(logits: torch.Tensor, scale: float, active) -> torch.Tensor:
    """Combine a CFG batch [2B, ...] (conditional half first) into [B, ...].

    `active` is a bool or a bool tensor broadcastable over the combined result's leading position axis;
    where inactive the conditional logits are used unchanged.
    """
    cond, uncond = logits.chunk(2, dim=0)
    guided = uncond + (cond - uncond) * scale
    if active is True:
        return guided
    if active is False:
        return cond
    return torch.where(active[..., None], guided, cond)


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p on [..., V]; removed entries become -inf. Returns a new tensor."""
    logits = logits / max(temperature, 1e-5)
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def probabilities(logits: torch.Tensor, s: SamplingConfig) -> torch.Tensor:
    """The distribution that plain sampling draws from, and that speculative sampling must reproduce."""
    return F.softmax(filter_logits(logits, s.temperature, s.top_k, s.top_p), dim=-1)


def draft_top(logits: torch.Tensor, s: SamplingConfig, k: int):
    """(log-probs, tokens) of the k best drafts under the *processed* guided draft distribution (LANTERN).

    With top-k filtering alone (k <= top_k) the k best tokens and the normaliser both come from one top_k
    call: log p = l - logsumexp(top-k logits). Otherwise the full filtered distribution is normalised."""
    logits = logits.float()
    if not s.greedy and s.top_p >= 1.0 and 0 < s.top_k < logits.shape[-1] and k <= s.top_k:
        vals, idx = torch.topk(logits / max(s.temperature, 1e-5), s.top_k, dim=-1)
        return (vals[..., :k] - torch.logsumexp(vals, dim=-1, keepdim=True)), idx[..., :k]
    lp = F.log_softmax(logits if s.greedy else filter_logits(logits, s.temperature, s.top_k, s.top_p), dim=-1)
    return torch.topk(lp, min(k, lp.shape[-1]), dim=-1)


def sample_token(logits: torch.Tensor, s: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """logits [B, V] -> tokens [B] (argmax when greedy)."""
    if s.greedy:
        return logits.argmax(dim=-1)
    return torch.multinomial(probabilities(logits, s), 1, generator=generator).squeeze(-1)
