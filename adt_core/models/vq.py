"""LlamaGen VQ tokenizer (VQ-16 / VQ-8) in the official key layout.

Module names follow FoundationVision/LlamaGen `tokenizer/tokenizer_image/vq_model.py`, so `vq_ds16_c2i.pt`,
`vq_ds16_t2i.pt` and `vq_ds8_c2i.pt` load strictly (the `quantize.codebook_used` usage counter is dropped by
the loader). Channel widths are configurable so the project's demo can train a small tokenizer with the
very same classes. The codebook is L2-normalised on read, as upstream does in quantisation and lookup.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQConfig:
    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    ch: int = 128
    ch_mult: List[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    z_channels: int = 256
    num_res_blocks: int = 2
    with_encoder: bool = True

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def to_dict(self) -> dict:
        return asdict(self)


def swish(x):
    return x * torch.sigmoid(x)


def group_norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = group_norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv2(swish(self.norm2(self.conv1(swish(self.norm1(x))))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head 1x1-conv self-attention over all pixels, scale c^-0.5."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = group_norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, c, h * w).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Level(nn.Module):
    """One resolution level: `res` blocks, optional `attn` blocks, optional resampler (upstream names)."""

    def __init__(self, cin, cout, n_blocks, with_attn, resample=None):
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()
        for _ in range(n_blocks):
            self.res.append(ResnetBlock(cin, cout))
            cin = cout
            if with_attn:
                self.attn.append(AttnBlock(cout))
        if resample == "down":
            self.downsample = Downsample(cout)
        elif resample == "up":
            self.upsample = Upsample(cout)

    def forward(self, x):
        for i, res in enumerate(self.res):
            x = res(x)
            if len(self.attn):
                x = self.attn[i](x)
        if hasattr(self, "downsample"):
            x = self.downsample(x)
        if hasattr(self, "upsample"):
            x = self.upsample(x)
        return x


def mid_blocks(c: int) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)])


class Encoder(nn.Module):
    def __init__(self, c: VQConfig):
        super().__init__()
        mult = [1] + list(c.ch_mult)
        last = len(c.ch_mult) - 1
        self.conv_in = nn.Conv2d(3, c.ch, 3, 1, 1)
        self.conv_blocks = nn.ModuleList(
            Level(c.ch * mult[i], c.ch * mult[i + 1], c.num_res_blocks, i == last, None if i == last else "down")
            for i in range(len(c.ch_mult)))
        top = c.ch * c.ch_mult[-1]
        self.mid = mid_blocks(top)
        self.norm_out = group_norm(top)
        self.conv_out = nn.Conv2d(top, c.z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    """conv_blocks[0] is the lowest resolution (and carries the attention blocks), as upstream."""

    def __init__(self, c: VQConfig):
        super().__init__()
        levels = len(c.ch_mult)
        cin = c.ch * c.ch_mult[-1]
        self.conv_in = nn.Conv2d(c.z_channels, cin, 3, 1, 1)
        self.mid = mid_blocks(cin)
        self.conv_blocks = nn.ModuleList()
        for i in reversed(range(levels)):
            cout = c.ch * c.ch_mult[i]
            self.conv_blocks.append(Level(cin, cout, c.num_res_blocks + 1, i == levels - 1, "up" if i else None))
            cin = cout
        self.norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantizer(nn.Module):
    def __init__(self, c: VQConfig):
        super().__init__()
        self.l2_norm = c.codebook_l2_norm
        self.embedding = nn.Embedding(c.codebook_size, c.codebook_embed_dim)

    def codebook(self) -> torch.Tensor:
        w = self.embedding.weight
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [B, C, h, w] -> (straight-through z_q, indices [B, h*w], codebook + 0.25 * commitment loss)."""
        zf = z.permute(0, 2, 3, 1)
        if self.l2_norm:
            zf = F.normalize(zf, p=2, dim=-1)
        e = self.codebook()
        flat = zf.reshape(-1, zf.shape[-1])
        d = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        idx = d.argmin(1)
        zq = e[idx].view(zf.shape)
        loss = F.mse_loss(zq, zf.detach()) + 0.25 * F.mse_loss(zq.detach(), zf)
        zq = zf + (zq - zf).detach()
        return zq.permute(0, 3, 1, 2), idx.view(z.shape[0], -1), loss


class VQModel(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        c = self.config = config
        if c.with_encoder:
            self.encoder = Encoder(c)
            self.quant_conv = nn.Conv2d(c.z_channels, c.codebook_embed_dim, 1)
        self.decoder = Decoder(c)
        self.quantize = Quantizer(c)
        self.post_quant_conv = nn.Conv2d(c.codebook_embed_dim, c.z_channels, 1)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def encode(self, images: torch.Tensor):
        """images [B, 3, H, W] in [-1, 1] -> (z_q, indices [B, h*w], vq loss)."""
        return self.quantize(self.quant_conv(self.encoder(images)))

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(zq))

    def decode_codes(self, codes: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """codes [B, rows*cols] -> images [B, 3, H, W], roughly in [-1, 1] (not clamped, as upstream)."""
        e = self.quantize.codebook()[codes.long()]
        zq = e.view(codes.shape[0], rows, cols, -1).permute(0, 3, 1, 2).to(self.post_quant_conv.weight.dtype)
        return self.decode(zq)


def to_image_tensor(decoded: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] float32 in [0, 1] on the CPU (ComfyUI's IMAGE layout)."""
    return ((decoded.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu()
