"""LlamaGen's 2D rotary position embedding, reproduced exactly.

Why exactly: LlamaGen's RoPE differs from the usual HF one in three ways that change outputs, so a
"close enough" version would silently degrade real checkpoints:
  * it is *interleaved* (pairs (x[2j], x[2j+1]) rotate together, as in Meta/gpt-fast), not rotate_half;
  * the first half of the rotation pairs encodes the grid row, the second half the column;
  * condition positions get all-zero (cos, sin) rows, so their q and k become zero vectors.
The table is `[prefix + rows*cols (+ pad), head_dim/2, 2]`; row p is used by sequence position p.
"""
import torch


def rope_table_2d(rows: int, cols: int, head_dim: int, base: float = 10000.0,
                  prefix: int = 0, pad: int = 0) -> torch.Tensor:
    """cos/sin table for a rows x cols grid preceded by `prefix` zero rows and followed by `pad` zero rows.

    Matches upstream `precompute_freqs_cis_2d` for square grids (upstream only builds square ones); the
    row/column frequency split is the same for rectangular grids.
    """
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2, device="cpu")[: half // 2].float() / half))
    row_f = torch.outer(torch.arange(rows, device="cpu").float(), freqs)  # [rows, hd/4]
    col_f = torch.outer(torch.arange(cols, device="cpu").float(), freqs)  # [cols, hd/4]
    grid = torch.cat([row_f[:, None, :].expand(rows, cols, -1),
                      col_f[None, :, :].expand(rows, cols, -1)], dim=-1)  # [rows, cols, hd/2]
    cache = torch.stack([torch.cos(grid), torch.sin(grid)], dim=-1).flatten(0, 1)
    zeros = lambda n: torch.zeros(n, head_dim // 2, 2, device="cpu")  # noqa: E731
    return torch.cat([zeros(prefix), cache, zeros(pad)])


def rope_table_1d(length: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Interleaved 1D table (gpt-fast layout), used by draft heads of 1D-RoPE targets."""
    freqs = 1.0 / (base ** (torch.arange(0, head_dim, 2, device="cpu")[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(length, device="cpu").float(), freqs)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, S, H, D] by table rows [S, D/2, 2] (fp32), interleaved pairs, cast back (as upstream).

    The pair rotation (a, b) -> (a cos - b sin, b cos + a sin) is a complex product, which is how it is
    computed here: three kernels instead of eight, which matters at batch 2 on a CPU.
    """
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    t = torch.view_as_complex(table).view(1, x.shape[1], 1, xc.shape[-1])
    return torch.view_as_real(xc * t).flatten(3).type_as(x)
