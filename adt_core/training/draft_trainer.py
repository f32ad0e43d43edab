"""Distil an EAGLE draft head from a target: its own samples, its hidden states, CFG rows as at inference.

Data: for every sequence (condition, tokens) the target is run teacher-forced on both CFG rows (the
condition and the null condition), giving final-normed hidden states f_0..f_{T+N-1}. The head learns, at
drafter position j, to map (embed(token_{j+1}), f_j) to f_{j+1} (SmoothL1, EAGLE's feature loss) and to
match the target's distribution there (soft cross-entropy through the frozen target head), on each row and
on the CFG-guided combination that drafting actually uses. Features get uniform noise (EAGLE, std 0.2).
"""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..adapters.llamagen import teacher_features
from ..engine.sampling import guide
from ..models.draft_head import DraftConfig, DraftHead
from .schedule import LossLog, lr_at, set_lr


@dataclass
class DraftData:
    features: torch.Tensor   # [M, 2, T+N, H] (cond row, uncond row), stored in fp16
    tokens: torch.Tensor     # [M, N]
    prefix_len: int


@torch.no_grad()
def collect_features(target, labels: torch.Tensor, tokens: torch.Tensor, batch: int = 32,
                     show_progress: bool = True) -> DraftData:
    feats = []
    for i in tqdm(range(0, labels.shape[0], batch), desc="target features", disable=not show_progress):
        lab = labels[i:i + batch].to(target.device)
        tok = tokens[i:i + batch].to(target.device)
        cond = target.condition_batch(lab, use_cfg=True)
        h = teacher_features(target, cond, tok.repeat(2, 1))
        feats.append(torch.stack(h.chunk(2, dim=0), dim=1).half().cpu())
    return DraftData(torch.cat(feats), tokens.cpu(), target.prefix_len)


def draft_config_for(target, intermediate: Optional[int] = None, heads: Optional[int] = None) -> DraftConfig:
    g = target.gpt.config
    return DraftConfig(hidden_size=g.dim, intermediate_size=intermediate or g.ffn_hidden,
                       num_attention_heads=heads or g.n_head, vocab_size=g.vocab_size, input_type=g.model_type)


def _soft_ce(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    return -(F.softmax(target_logits, -1) * F.log_softmax(logits, -1)).sum(-1).mean()


def draft_losses(head: DraftHead, target, data: DraftData, idx: torch.Tensor, cfg_scale: float,
                 noise: float, gen: Optional[torch.Generator]):
    """(total, feature loss, row CE, guided CE, top-1 agreement on guided logits) for sequences `idx`."""
    dev = target.device
    f = data.features[idx].to(dev, torch.float32)                      # [B, 2, L, H]
    b, _, length, hdim = f.shape
    t = data.prefix_len
    f = f.transpose(0, 1).reshape(2 * b, length, hdim)                 # cond rows, then uncond rows
    toks = torch.cat([torch.zeros(b, t - 1, dtype=torch.long), data.tokens[idx]], dim=1).to(dev)
    f_in, f_tgt = f[:, :-1], f[:, 1:]
    if noise > 0:
        f_in = f_in + (torch.rand(f_in.shape, generator=gen, device="cpu").to(dev) * 2 - 1) * noise
    rope = target.draft_rope(head.config.head_dim)[: length - 1]
    out = head(f_in, toks[:, : length - 1].repeat(2, 1), rope, None, "causal")
    sl = slice(t - 1, length - 1)  # positions that draft image tokens at inference
    out, f_tgt = out[:, sl], f_tgt[:, sl]
    vloss = F.smooth_l1_loss(out, f_tgt)
    lg, lt = target.head(out), target.head(f_tgt)
    ploss = _soft_ce(lg, lt)
    g_hat, g_tgt = guide(lg, cfg_scale, True), guide(lt, cfg_scale, True)
    gloss = _soft_ce(g_hat, g_tgt)
    agree = (g_hat.argmax(-1) == g_tgt.argmax(-1)).float().mean()
    return vloss + 0.1 * ploss + 0.1 * gloss, vloss, ploss, gloss, agree


def train_draft(head: DraftHead, target, data: DraftData, steps: int, batch: int = 16, lr: float = 1e-3,
                cfg_scale: float = 4.0, noise: float = 0.2, seed: int = 0, log_path=None,
                show_progress: bool = True, held_out: int = 0) -> dict:
    """Train `head` in place on data[held_out:]; evaluate on the first `held_out` sequences."""
    for p in target.gpt.parameters():
        p.requires_grad_(False)
    head.embed_tokens.weight.requires_grad_(False)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    log = LossLog(log_path, "draft")
    m = data.tokens.shape[0]
    head.train()
    bar = tqdm(range(steps), desc="draft head", disable=not show_progress)
    for step in bar:
        idx = torch.randint(held_out, m, (batch,), generator=gen)
        set_lr(opt, lr_at(step, steps, lr, max(steps // 20, 1)))
        loss, vloss, ploss, gloss, agree = draft_losses(head, target, data, idx, cfg_scale, noise, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            log(step, loss=loss.item(), vloss=vloss.item(), ploss=ploss.item(), gloss=gloss.item(),
                top1=agree.item())
            bar.set_postfix(loss=f"{loss.item():.3f}", top1=f"{agree.item():.2f}")
    head.eval()
    return evaluate_draft(head, target, data, range(held_out), cfg_scale) if held_out else {}


@torch.no_grad()
def evaluate_draft(head: DraftHead, target, data: DraftData, indices, cfg_scale: float) -> dict:
    """Held-out one-step acceptance: greedy agreement and expected acceptance p_target(draft argmax)."""
    idx = torch.tensor(list(indices))
    agree, expected, count = 0.0, 0.0, 0
    for chunk in idx.split(16):
        dev = target.device
        f = data.features[chunk].to(dev, torch.float32)
        b, _, length, hdim = f.shape
        t = data.prefix_len
        f = f.transpose(0, 1).reshape(2 * b, length, hdim)
        toks = torch.cat([torch.zeros(b, t - 1, dtype=torch.long), data.tokens[chunk]], 1).to(dev)
        rope = target.draft_rope(head.config.head_dim)[: length - 1]
        out = head(f[:, :-1], toks[:, : length - 1].repeat(2, 1), rope, None, "causal")[:, t - 1:]
        g_hat = guide(target.head(out), cfg_scale, True)
        g_tgt = guide(target.head(f[:, t:]), cfg_scale, True)
        pick = g_hat.argmax(-1)
        agree += (pick == g_tgt.argmax(-1)).float().sum().item()
        expected += F.softmax(g_tgt, -1).gather(-1, pick[..., None]).sum().item()
        count += pick.numel()
    return {"top1_agreement": round(agree / count, 4), "expected_acceptance_t1": round(expected / count, 4),
            "positions": count}
