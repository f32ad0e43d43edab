"""Tiny random models in the official key layouts, built by the tests (never downloaded)."""
import json
import os

import torch

from adt_core.adapters.llamagen import LlamaGenTarget
from adt_core.models.draft_head import DraftConfig, DraftHead
from adt_core.models.gpt import GPT, GPTConfig
from adt_core.models.vq import VQConfig, VQModel
from adt_core.pipeline import Pipeline


def _randomize(module, std, seed):
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * std
    return module


def tiny_gpt(vocab=64, dim=64, n_layer=2, n_head=4, classes=10, grid=(4, 4), seed=0, std=0.3) -> GPT:
    cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, vocab_size=vocab, num_classes=classes,
                    grid_rows=grid[0], grid_cols=grid[1], ffn_hidden=2 * dim)
    g = _randomize(GPT(cfg), std, seed)
    for blk in g.layers:  # norms near 1 keep activations sane
        blk.attention_norm.weight.data.fill_(1.0)
        blk.ffn_norm.weight.data.fill_(1.0)
    g.norm.weight.data.fill_(1.0)
    return g.eval()


def tiny_draft(gpt: GPT, seed=1, std=0.1) -> DraftHead:
    c = gpt.config
    d = DraftHead(DraftConfig(hidden_size=c.dim, intermediate_size=2 * c.dim, num_attention_heads=c.n_head,
                              vocab_size=c.vocab_size))
    _randomize(d, std, seed)
    d.layers[0].post_attention_layernorm.weight.data.fill_(1.0)
    return d.eval()


def markov_gpt(vocab=32, dim=32, grid=(4, 4), seed=0, attn_scale=0.0, std=0.5) -> GPT:
    """One layer whose attention output is scaled by attn_scale: at 0 the hidden state of an image position
    depends only on its input token, so an oracle draft head can reproduce the target exactly."""
    g = tiny_gpt(vocab=vocab, dim=dim, n_layer=1, n_head=4, grid=grid, seed=seed, std=std)
    g.layers[0].attention.wo.weight.data *= attn_scale
    return g


@torch.no_grad()
def oracle_draft(gpt: GPT) -> DraftHead:
    """Draft head returning, for the next token t, exactly the target's hidden state of input t
    (valid when the target's attention output is zero): embed_tokens holds those states, fc selects them,
    and the decoder layer's output projections are zero so the residual passes them through."""
    c = gpt.config
    d = DraftHead(DraftConfig(hidden_size=c.dim, intermediate_size=2 * c.dim, num_attention_heads=c.n_head,
                              vocab_size=c.vocab_size))
    for p in d.parameters():
        p.data.zero_()
    tok = torch.arange(c.vocab_size)
    target = LlamaGenTarget(gpt)
    target.setup(c.vocab_size, 4)
    target.prefill(torch.zeros(c.vocab_size, dtype=torch.long))
    hidden = target.forward(tok[:, None])[:, 0]
    d.embed_tokens.weight.data = hidden.clone()
    d.fc.weight.data[:, : c.dim] = torch.eye(c.dim)
    d.layers[0].post_attention_layernorm.weight.data.fill_(1.0)
    return d.eval()


def tiny_vq(codebook=64, ch=32, ch_mult=(1, 1, 2, 2, 4), z=32, seed=2) -> VQModel:
    v = VQModel(VQConfig(codebook_size=codebook, codebook_embed_dim=8, ch=ch, ch_mult=list(ch_mult),
                         z_channels=z))
    g = torch.Generator().manual_seed(seed)
    for p in v.parameters():
        p.data += torch.randn(p.shape, generator=g) * 0.02
    return v.eval()


def pipeline(gpt, draft=None, vq=None) -> Pipeline:
    return Pipeline(LlamaGenTarget(gpt), vq, draft)


# --- writing files in the official layouts -----------------------------------------------------------
def save_gpt(gpt: GPT, path: str, wrapper: str = "model", sidecar: bool = True) -> str:
    sd = gpt.state_dict()
    obj = sd if wrapper == "raw" else {wrapper: sd, "steps": 10}
    torch.save(obj, path)
    if sidecar:
        with open(os.path.splitext(path)[0] + ".json", "w") as f:
            json.dump(gpt.config.to_dict(), f)
    return path


def save_draft_folder(draft: DraftHead, folder: str, fmt: str = "bin") -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(draft.config.to_json_dict(), f)
    sd = draft.state_dict()
    if fmt == "bin":
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(folder, "model.safetensors"))
    return folder


def save_vq(vq: VQModel, path: str, sidecar: bool = False, with_usage: bool = True) -> str:
    sd = dict(vq.state_dict())
    if with_usage:
        sd["quantize.codebook_used"] = torch.zeros(65536)
    torch.save({"model": sd}, path)
    if sidecar:
        with open(os.path.splitext(path)[0] + ".json", "w") as f:
            json.dump(vq.config.to_dict(), f)
    return path
