"""Distil an EAGLE draft head from a target: its own samples, its hidden states, CFG rows as at inference.

Data: for every sequence (condition, tokens) the target is run teacher-forced on both CFG rows (the
condition and the null condition), giving final-normed hidden states f_0..f_{T+N-1}. The head learns, at
drafter position j, to map (embed(token_{j+1}), f_j) to f_{j+1} (SmoothL1, EAGLE's feature loss) and to
match the target's distribution there (soft cross-entropy through the frozen target head), on each row and
on the CFG-guided combination that drafting actually uses. Features get uniform noise (EAGLE, std 0.2).

Family-generic: features come from the adapter's own inference API (setup / prefill / forward), so the
caption mask of LlamaGen t2i and Janus' prompt handling are exactly those of generation; token embeddings
go through `target.draft_embed` (Janus) and logits through `target.head`. Janus prompts differ in length:
sequences are left-padded to one width and `valid` marks real positions (padding is masked as keys).
"""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..engine.sampling import guide
from ..models.draft_head import DraftConfig, DraftHead
from .schedule import LossLog, fast_bf16, lr_at, set_lr


@dataclass
class DraftData:
    features: torch.Tensor   # [M, 2, T+N, H] (cond row, uncond row), stored in fp16
    tokens: torch.Tensor     # [M, N]
    prefix_len: int          # T: condition positions (padded width for variable-length prompts)
    valid: Optional[torch.Tensor] = None  # [M, T+N] bool, False at left padding (None: all real)


@torch.inference_mode()  # as in generation, so caches made there are reused without copies
def target_features(target, cond, tokens: torch.Tensor) -> torch.Tensor:
    """Hidden states [2b, T+N, H] (cond rows, then uncond rows) of b images with tokens [b, N], from the
    adapter's cached forward with a causal mask over the image tokens. `cond` is validated already."""
    b, n = tokens.shape
    target.setup(2 * b, extra_slots=n)
    h0 = target.prefill(target.condition_batch(cond, True))
    causal = torch.ones(n, n, dtype=torch.bool, device=target.device).tril()
    h1 = target.forward(tokens.to(target.device), None, causal)
    return torch.cat([h0, h1], dim=1)


@torch.inference_mode()
def collect_features(target, conds, tokens: torch.Tensor, batch: int = 32,
                     show_progress: bool = True) -> DraftData:
    """conds: class labels, a MaskedCondition (t2i features / Janus ids) or prompts the adapter accepts."""
    conds = target.validate_condition(conds)
    width = target.prefix_len
    feats, valid = [], []
    for i in tqdm(range(0, tokens.shape[0], batch), desc="target features", disable=not show_progress):
        tok = tokens[i:i + batch]
        h = target_features(target, conds[i:i + batch], tok)
        pad = width - target.prefix_len  # columns condition_batch dropped (padding shared by the chunk)
        h = torch.stack(h.chunk(2, dim=0), dim=1).half().cpu()
        feats.append(F.pad(h, (0, 0, pad, 0)))
        mask = target.draft_valid_mask(conds[i:i + batch])
        if mask is not None:
            valid.append(torch.cat([mask.cpu(), torch.ones(tok.shape, dtype=torch.bool)], dim=1))
    target.release()
    return DraftData(torch.cat(feats), tokens.cpu(), width, torch.cat(valid) if valid else None)


def draft_config_for(target, intermediate: Optional[int] = None, heads: Optional[int] = None) -> DraftConfig:
    return target.draft_config(intermediate, heads)


def _soft_ce(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    return -(F.softmax(target_logits, -1) * F.log_softmax(logits, -1)).sum(-1).mean()


def _head_inputs(head: DraftHead, target, data: DraftData, idx: torch.Tensor):
    """-> features [2B, L, H] fp32, drafter input tokens [2B, L-1], RoPE rows, attention mask."""
    dev = target.device
    f = data.features[idx].to(dev, torch.float32)                      # [B, 2, L, H]
    b, _, length, hdim = f.shape
    t = data.prefix_len
    f = f.transpose(0, 1).reshape(2 * b, length, hdim)                 # cond rows, then uncond rows
    toks = torch.cat([torch.zeros(b, t - 1, dtype=torch.long), data.tokens[idx]], dim=1).to(dev)
    rope = target.draft_rope(head.config.head_dim)[: length - 1]
    mask = "causal"
    if data.valid is not None:  # left padding: masked as keys; a padded row still sees itself (no NaNs)
        keys = data.valid[idx][:, :-1].to(dev).repeat(2, 1)          # drafter position j holds f_j
        n = length - 1
        causal = torch.ones(n, n, dtype=torch.bool, device=dev).tril()
        mask = (causal[None] & keys[:, None, :]) | torch.eye(n, dtype=torch.bool, device=dev)[None]
        mask = mask[:, None]
    return f, toks.repeat(2, 1), rope, mask


def _logits(target, hidden: torch.Tensor) -> torch.Tensor:
    return target.head(hidden.to(target.dtype)).float()


def _run_head(head, target, f_in, toks, rope, mask):
    return head(f_in, toks, rope, None, mask, target.draft_embed(toks))


def draft_losses(head: DraftHead, target, data: DraftData, idx: torch.Tensor, cfg_scale: float,
                 noise: float, gen: Optional[torch.Generator]):
    """(total, feature loss, row CE, guided CE, top-1 agreement on guided logits) for sequences `idx`."""
    dev = target.device
    f, toks, rope, mask = _head_inputs(head, target, data, idx)
    length, t = f.shape[1], data.prefix_len
    f_in, f_tgt = f[:, :-1], f[:, 1:]
    if noise > 0:
        f_in = f_in + (torch.rand(f_in.shape, generator=gen, device="cpu").to(dev) * 2 - 1) * noise
    out = _run_head(head, target, f_in, toks[:, : length - 1], rope, mask)
    sl = slice(t - 1, length - 1)  # positions that draft image tokens at inference
    out, f_tgt = out[:, sl].float(), f_tgt[:, sl]
    vloss = F.smooth_l1_loss(out, f_tgt)
    lg, lt = _logits(target, out), _logits(target, f_tgt)
    ploss = _soft_ce(lg, lt)
    g_hat, g_tgt = guide(lg, cfg_scale, True), guide(lt, cfg_scale, True)
    gloss = _soft_ce(g_hat, g_tgt)
    agree = (g_hat.argmax(-1) == g_tgt.argmax(-1)).float().mean()
    return vloss + 0.1 * ploss + 0.1 * gloss, vloss, ploss, gloss, agree


def _freeze_target(target) -> None:
    for module in target.torch_modules():
        module.requires_grad_(False)


def train_draft(head: DraftHead, target, data: DraftData, steps: int, batch: int = 16, lr: float = 1e-3,
                cfg_scale: float = 4.0, noise: float = 0.2, seed: int = 0, log_path=None,
                show_progress: bool = True, held_out: int = 0, grad_accum: int = 1, amp: bool = False,
                checkpoint: Optional[str] = None, checkpoint_every: int = 200, resume: bool = False) -> dict:
    """Train `head` in place on data[held_out:]; evaluate on the first `held_out` sequences.

    grad_accum: micro-batches of `batch` per optimiser step. amp: bf16 autocast where the device runs bf16
    natively (training/schedule.fast_bf16; the head's master weights stay fp32). checkpoint: file for head + optimiser + step + RNG, written every
    `checkpoint_every` steps and at the end; with resume=True training continues from it."""
    _freeze_target(target)
    head.embed_tokens.weight.requires_grad_(False)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    start = 0
    if resume and checkpoint is not None:
        start = load_checkpoint(checkpoint, head, opt, gen)
    log = LossLog(log_path, "draft")
    m = data.tokens.shape[0]
    if m <= held_out:
        raise ValueError(f"{m} sequences leave nothing to train on after {held_out} held out")
    dev = target.device
    use_amp = amp and fast_bf16(dev)
    head.train()
    bar = tqdm(range(start, steps), desc="draft head", disable=not show_progress, initial=start, total=steps)
    for step in bar:
        set_lr(opt, lr_at(step, steps, lr, max(steps // 20, 1)))
        opt.zero_grad(set_to_none=True)
        for _ in range(grad_accum):
            idx = torch.randint(held_out, m, (batch,), generator=gen)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, vloss, ploss, gloss, agree = draft_losses(head, target, data, idx, cfg_scale, noise, gen)
            (loss / grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            log(step, loss=loss.item(), vloss=vloss.item(), ploss=ploss.item(), gloss=gloss.item(),
                top1=agree.item())
            bar.set_postfix(loss=f"{loss.item():.3f}", top1=f"{agree.item():.2f}")
        if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step == steps - 1):
            save_checkpoint(checkpoint, head, opt, gen, step + 1)
    head.eval()
    return evaluate_draft(head, target, data, range(held_out), cfg_scale) if held_out else {}


def save_checkpoint(path: str, head: DraftHead, opt, gen: torch.Generator, step: int) -> None:
    import os
    tmp = path + ".tmp"
    torch.save({"head": head.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "rng": gen.get_state()}, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind


def load_checkpoint(path: str, head: DraftHead, opt, gen: torch.Generator) -> int:
    """Restore a training checkpoint (if present); returns the step to continue from."""
    import os
    if not os.path.isfile(path):
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    head.load_state_dict(state["head"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["rng"])
    return int(state["step"])


@torch.no_grad()
def evaluate_draft(head: DraftHead, target, data: DraftData, indices, cfg_scale: float) -> dict:
    """Held-out one-step acceptance: greedy agreement and expected acceptance p_target(draft argmax)."""
    idx = torch.tensor(list(indices))
    agree, expected, count = 0.0, 0.0, 0
    was_training = head.training
    head.eval()
    for chunk in idx.split(16):
        f, toks, rope, mask = _head_inputs(head, target, data, chunk)
        length, t = f.shape[1], data.prefix_len
        out = _run_head(head, target, f[:, :-1].to(head.fc.weight.dtype), toks[:, : length - 1], rope, mask)
        g_hat = guide(_logits(target, out[:, t - 1:]), cfg_scale, True)
        g_tgt = guide(_logits(target, f[:, t:]), cfg_scale, True)
        pick = g_hat.argmax(-1)
        agree += (pick == g_tgt.argmax(-1)).float().sum().item()
        expected += F.softmax(g_tgt, -1).gather(-1, pick[..., None]).sum().item()
        count += pick.numel()
    head.train(was_training)
    return {"top1_agreement": round(agree / count, 4), "expected_acceptance_t1": round(expected / count, 4),
            "positions": count}
