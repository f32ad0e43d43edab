"""Train a LlamaGen-layout VQ tokenizer: L1 + L2 reconstruction plus codebook/commitment loss.

No perceptual or adversarial loss (the demo needs a working tokenizer, not state-of-the-art fidelity). The
codebook starts from encoder outputs and codes unused for a while are restarted on random encoder
outputs, so the 1024 codes stay in use; the encoder is fully convolutional, so it trains on crops.
"""
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models.vq import VQConfig, VQModel
from .schedule import LossLog, lr_at, set_lr


@torch.no_grad()
def _latents(vq: VQModel, x: torch.Tensor) -> torch.Tensor:
    z = vq.quant_conv(vq.encoder(x)).permute(0, 2, 3, 1).reshape(-1, vq.config.codebook_embed_dim)
    return F.normalize(z, dim=-1) if vq.config.codebook_l2_norm else z


def train_vq(config: VQConfig, batches: Callable[[int], torch.Tensor], steps: int, lr: float = 1e-3,
             seed: int = 0, log_path=None, restart_every: int = 50, show_progress: bool = True) -> VQModel:
    """`batches(step)` returns images [B, 3, H, W] in [-1, 1]."""
    torch.manual_seed(seed)
    vq = VQModel(config)
    opt = torch.optim.Adam(vq.parameters(), lr=lr, betas=(0.5, 0.9))
    log = LossLog(log_path, "vq")
    usage = torch.zeros(config.codebook_size)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(range(steps), desc="VQ tokenizer", disable=not show_progress)
    for step in bar:
        x = batches(step)
        if step == 0 or (step % restart_every == 0 and (usage == 0).any()):
            lat = _latents(vq, x)
            dead = torch.nonzero(usage == 0).squeeze(1) if step else torch.arange(config.codebook_size)
            pick = torch.randint(0, lat.shape[0], (dead.numel(),), generator=gen)
            vq.quantize.embedding.weight.data[dead] = lat[pick] + 0.01 * torch.randn(dead.numel(), lat.shape[1],
                                                                                      generator=gen)
            usage.zero_()
        set_lr(opt, lr_at(step, steps, lr, max(steps // 20, 1)))
        zq, idx, vq_loss = vq.encode(x)
        rec = vq.decode(zq)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage += torch.bincount(idx.flatten(), minlength=config.codebook_size).float()
        if step % 10 == 0 or step == steps - 1:
            used = int((usage > 0).sum())
            log(step, loss=loss.item(), rec_l1=F.l1_loss(rec, x).item(), codes_used=used)
            bar.set_postfix(loss=f"{loss.item():.3f}", codes=used)
    return vq.eval()
