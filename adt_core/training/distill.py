"""`adt-tree train-draft`: self-distil an EAGLE draft head for any supported target, resumably.

1. Samples: the target generates its own images (plain decoding with CFG and the sampling settings used
   at inference), in chunks written to `<out>/train/samples_XXXXX.safetensors`; each chunk has its own
   seed, so an interrupted run regenerates nothing it already has.
2. Features: one teacher-forced pass of the target over every sample on both CFG rows (recomputed at each
   start: far cheaper than sampling, and it keeps gigabytes of hidden states off the disk).
3. Training: draft_trainer.train_draft with a held-out split, gradient accumulation, optional bf16
   autocast on CUDA, and `<out>/train/checkpoint.pt` for --resume.
4. The head is saved in the EAGLE/LANTERN layout directly in `<out>` (config.json + model.safetensors,
   `input_type` = the target's family), with held-out acceptance before and after training in config.json.
"""
import json
import os
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from ..errors import InputError
from ..models.draft_head import DraftHead
from ..text.condition import MaskedCondition
from .draft_io import save_draft
from .draft_trainer import collect_features, draft_config_for, evaluate_draft, train_draft


@dataclass
class DistillSettings:
    samples: int = 1000          # images the target generates (the first `held_out` are held out)
    held_out: int = 32
    steps: int = 2000            # optimiser steps
    batch: int = 8               # sequences per micro-batch
    grad_accum: int = 1
    lr: float = 3e-4
    gen_batch: int = 8           # images sampled together
    feature_batch: int = 8       # images per teacher-forced feature pass
    noise: float = 0.2
    seed: int = 0
    amp: bool = True             # bf16 autocast when training on CUDA
    checkpoint_every: int = 200
    intermediate: Optional[int] = None  # draft MLP width (default: the target's)
    heads: Optional[int] = None         # draft attention heads (default: the target's)


def cycle(items, n: int):
    """Repeat the prompts / labels / condition rows to n samples (a MaskedCondition stays one)."""
    if len(items) == 0:
        raise InputError("train-draft needs at least one prompt or class label")
    if isinstance(items, MaskedCondition):
        idx = torch.arange(n) % len(items)
        return MaskedCondition(items.values[idx], items.mask[idx])
    return [items[i % len(items)] for i in range(n)]


def _init_head(target, settings: DistillSettings) -> DraftHead:
    head = DraftHead(draft_config_for(target, settings.intermediate, settings.heads))
    with torch.no_grad():
        head.embed_tokens.weight.copy_(target.draft_embedding_table())
    return head.to(target.device)


def sample_targets(pipe, conditions: list, sampling, settings: DistillSettings, folder: str,
                   log=print) -> torch.Tensor:
    """Tokens [M, N] of the target's own samples, chunk by chunk, reusing chunks already on disk."""
    from safetensors.torch import load_file, save_file
    from ..pipeline import SpecOptions
    out = []
    chunks = range(0, len(conditions), settings.gen_batch)
    for k, start in enumerate(chunks):
        path = os.path.join(folder, f"samples_{k:05d}.safetensors")
        part = conditions[start:start + settings.gen_batch]
        if os.path.isfile(path):
            tokens = load_file(path)["tokens"]
            if tokens.shape[0] == len(part):
                out.append(tokens)
                continue
        res = pipe.generate(part, SpecOptions("vanilla"), sampling, seed=settings.seed * 1_000_003 + k,
                            decode=False)
        tokens = torch.tensor(res.tokens, dtype=torch.long)
        save_file({"tokens": tokens}, path)
        out.append(tokens)
        log(f"samples: {min(start + len(part), len(conditions))}/{len(conditions)}")
    pipe.release()
    return torch.cat(out)


def run_train_draft(pipe, items, out_dir: str, sampling, settings: DistillSettings,
                    resume: bool = False, show_progress: bool = True, log=print) -> dict:
    """items: class labels (c2i), prompts (t2i with a T5 encoder, Janus), Janus prompt token-id lists, or a
    MaskedCondition of caption features / prompt ids; cycled to `settings.samples`."""
    train_dir = os.path.join(out_dir, "train")
    ckpt = os.path.join(train_dir, "checkpoint.pt")
    if os.path.exists(ckpt) and not resume:
        raise InputError(f"{out_dir} already holds a train-draft run; pass --resume to continue it or choose "
                         f"another --out")
    if settings.samples <= settings.held_out:
        raise InputError(f"--samples {settings.samples} must exceed the {settings.held_out} held-out samples")
    os.makedirs(train_dir, exist_ok=True)
    target = pipe.target
    with open(os.path.join(train_dir, "settings.json"), "w") as f:
        json.dump({"settings": asdict(settings), "sampling": sampling.to_dict(), "target": pipe.names}, f, indent=1)
    conditions = cycle(items if isinstance(items, MaskedCondition) else list(items), settings.samples)
    tokens = sample_targets(pipe, conditions, sampling, settings, train_dir, log)
    conds = conditions
    if isinstance(conditions, list) and isinstance(conditions[0], str):
        conds = pipe.encode_prompts(conditions)
    elif isinstance(conditions, list) and isinstance(conditions[0], int):
        conds = torch.tensor(conditions, dtype=torch.long)
    data = collect_features(target, conds, tokens, settings.feature_batch, show_progress)
    cfg = sampling.cfg_scale if sampling.use_cfg else 1.0
    head = _init_head(target, settings)
    held = range(settings.held_out)
    before = evaluate_draft(head, target, data, held, cfg) if settings.held_out else {}
    log(f"untrained head, held-out: {before}")
    after = train_draft(head, target, data, settings.steps, settings.batch, settings.lr, cfg, settings.noise,
                        settings.seed, os.path.join(train_dir, "log.jsonl"), show_progress, settings.held_out,
                        settings.grad_accum, settings.amp, ckpt, settings.checkpoint_every, resume)
    log(f"trained head, held-out: {after}")
    save_draft(head.float(), out_dir, extra={
        "target": {k: v for k, v in pipe.names.items() if v}, "family": target.draft_family,
        "samples": settings.samples, "steps": settings.steps, "sampling": sampling.to_dict(),
        "held_out_untrained": before, "held_out": after})
    return {"draft": out_dir, "untrained": before, "trained": after}
