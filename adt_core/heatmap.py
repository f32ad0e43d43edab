"""A picture of *why* speculative decoding was fast: accepted length over the token grid.

Each run of tokens committed by one target forward is painted with its length (1 = no draft accepted),
on a perceptual colour ramp with a legend; optionally blended over the generated image.
"""
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# dark blue -> teal -> green -> yellow (viridis-like anchors); long runs are bright
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=float)


def ramp(t: np.ndarray) -> np.ndarray:
    """t in [0, 1] -> RGB uint8."""
    t = np.clip(t, 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(int), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def run_lengths(grid: Sequence[Sequence[int]]) -> np.ndarray:
    """Sparse grid (run length at the run's first cell) -> dense grid (every cell holds its run's length)."""
    flat = np.asarray(grid, dtype=int).reshape(-1)
    dense = np.zeros_like(flat)
    i = 0
    while i < flat.size:
        n = max(int(flat[i]), 1)
        dense[i:i + n] = flat[i] if flat[i] else 1
        i += n
    return dense.reshape(np.asarray(grid).shape)


def render_heatmap(stats: Union[dict, object], image: Optional[np.ndarray] = None, size: Optional[int] = None,
                   alpha: float = 0.55, max_len: Optional[int] = None, legend: bool = True) -> Image.Image:
    """Heatmap of accepted lengths at the image's resolution, with a legend strip below.

    `stats`: an ImageStats or its to_dict(). `image`: [H, W, 3] floats in 0..1 or uint8 to blend under it.
    """
    grid = stats["accepted_length_grid"] if isinstance(stats, dict) else stats.grid_2d()
    dense = run_lengths(grid)
    top = max_len or max(int(dense.max()), 2)
    rows, cols = dense.shape
    if image is not None:
        img = np.asarray(image)
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype != np.uint8 else img
        h, w = img.shape[:2]
    else:
        h = w = size or 16 * max(rows, cols)
    colors = ramp((dense - 1) / max(top - 1, 1))
    heat = np.asarray(Image.fromarray(colors).resize((w, h), Image.NEAREST), dtype=float)
    if image is not None:
        heat = alpha * heat + (1 - alpha) * img.astype(float)
    out = Image.fromarray(heat.astype(np.uint8))
    return _with_legend(out, top) if legend else out


def _with_legend(img: Image.Image, top: int) -> Image.Image:
    w, h = img.size
    bar_h = max(14, h // 10)
    canvas = Image.new("RGB", (w, h + bar_h + 14), (20, 20, 20))
    canvas.paste(img, (0, 0))
    strip = ramp(np.linspace(0, 1, w))[None].repeat(bar_h, 0)
    canvas.paste(Image.fromarray(strip), (0, h))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((2, h + bar_h), "1", fill=(230, 230, 230), font=font)
    label = f"{top} tokens / forward"
    tw = draw.textlength(label, font=font)
    draw.text((w - tw - 2, h + bar_h), label, fill=(230, 230, 230), font=font)
    return canvas


def to_image_array(img: Image.Image) -> np.ndarray:
    """PIL -> [H, W, 3] float32 in 0..1 (what ComfyUI's IMAGE holds per batch item)."""
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
