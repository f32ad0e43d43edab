"""Train a class-conditional LlamaGen-layout GPT on token grids (teacher forcing, class dropout for CFG)."""
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models.gpt import GPT, GPTConfig
from .schedule import LossLog, lr_at, set_lr


def train_gpt(config: GPTConfig, tokens: torch.Tensor, labels: torch.Tensor, steps: int, batch: int = 32,
              lr: float = 1e-3, class_dropout: float = 0.1, seed: int = 0, log_path=None,
              show_progress: bool = True, amp: bool = False) -> GPT:
    """tokens [M, N] long, labels [M] long. Labels are replaced by the null class with prob `class_dropout`
    (LlamaGen's label dropout), so the same model serves the unconditional CFG branch. amp: bf16 autocast
    for the forward pass (fp32 master weights and loss), as LlamaGen trains in mixed precision."""
    torch.manual_seed(seed)
    gpt = GPT(config)
    for m in gpt.modules():  # LlamaGen init: N(0, 0.02), output head zeroed
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(m.weight, std=0.02)
    torch.nn.init.zeros_(gpt.output.weight)
    decay = [p for n, p in gpt.named_parameters() if p.dim() >= 2]
    other = [p for n, p in gpt.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    log = LossLog(log_path, "gpt")
    bar = tqdm(range(steps), desc="GPT", disable=not show_progress)
    gpt.train()
    for step in bar:
        idx = torch.randint(0, tokens.shape[0], (batch,), generator=gen)
        cond = labels[idx].clone()
        cond[torch.rand(batch, generator=gen) < class_dropout] = gpt.null_class
        set_lr(opt, lr_at(step, steps, lr, max(steps // 20, 1)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = gpt.training_forward(cond, tokens[idx])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens[idx].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            log(step, loss=loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return gpt.eval()
