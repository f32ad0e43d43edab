"""Procedural training scenes for the bundled demo model, deterministic from (seed, index).

Every class mixes smooth, predictable regions (sky gradients, flat walls, calm water, sand) with
textured, unpredictable ones (grass, gravel, foliage, brick, noise), so how hard the next token is varies
across the image: exactly the situation ADT-Tree adapts to. Smooth regions are drawn without any noise, so
their tokens repeat along rows and change slowly down columns.
"""
from typing import Callable, Dict, List

import numpy as np

SIZE = 128
CLASSES: List[str] = ["meadow", "seaside", "brick_wall", "desert", "forest", "room", "mountains",
                      "night_city", "gravel_path", "snowfield"]


def value_noise(rng: np.random.Generator, size: int, cell: int, octaves: int = 3) -> np.ndarray:
    """Smooth-ish random field in [0, 1]: bilinear upsampled random grids summed over octaves."""
    out = np.zeros((size, size))
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        n = max(size // cell, 1) + 2
        g = rng.random((n, n))
        coords = np.linspace(0, n - 2, size, endpoint=False)
        i = coords.astype(int)
        f = coords - i
        row = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]
        out += amp * (row[:, i] * (1 - f)[None, :] + row[:, i + 1] * f[None, :])
        total += amp
        amp *= 0.5
        cell = max(cell // 2, 1)
    return out / total


def _color(rng, base, jitter=0.08):
    return np.clip(np.asarray(base, dtype=float) + rng.uniform(-jitter, jitter, 3), 0, 1)


def _vgrad(top, bottom, h, w=SIZE):
    t = np.linspace(0, 1, h)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()


def _textured(rng, base, spread, cell, h, w=SIZE, octaves=3):
    n = value_noise(rng, max(h, w), cell, octaves)[:h, :w, None]
    fine = rng.random((h, w, 1))
    return np.clip(base + spread * (0.7 * (n - 0.5) + 0.6 * (fine - 0.5)), 0, 1)


def _sky(rng, h):
    return _vgrad(_color(rng, [0.25, 0.45, 0.85]), _color(rng, [0.75, 0.85, 0.95]), h)


def _split(rng, lo=0.35, hi=0.65):
    return int(SIZE * rng.uniform(lo, hi)) // 8 * 8


def meadow(rng):
    y = _split(rng)
    img = _sky(rng, SIZE)
    img[y:] = _textured(rng, _color(rng, [0.25, 0.55, 0.2]), 0.5, 8, SIZE - y)
    return img


def seaside(rng):
    y1, y2 = _split(rng, 0.3, 0.45), _split(rng, 0.7, 0.85)
    img = _sky(rng, SIZE)
    img[y1:y2] = _vgrad(_color(rng, [0.1, 0.3, 0.55]), _color(rng, [0.15, 0.4, 0.6]), y2 - y1)
    img[y2:] = _textured(rng, _color(rng, [0.8, 0.72, 0.5]), 0.35, 4, SIZE - y2)
    return img


def brick_wall(rng):
    y = _split(rng, 0.15, 0.3)
    img = _sky(rng, SIZE)
    base, mortar = _color(rng, [0.6, 0.25, 0.18]), _color(rng, [0.75, 0.72, 0.68], 0.04)
    wall = _textured(rng, base, 0.35, 4, SIZE - y)
    bh, bw = 8, 16
    for r in range(0, SIZE - y, bh):
        wall[r:r + 1] = mortar
        off = (r // bh % 2) * (bw // 2)
        for c in range(off, SIZE, bw):
            wall[r:r + bh, c:c + 1] = mortar
    img[y:] = wall
    return img


def desert(rng):
    y = _split(rng, 0.3, 0.5)
    img = _vgrad(_color(rng, [0.55, 0.7, 0.9]), _color(rng, [0.95, 0.85, 0.7]), SIZE)
    img[y:] = _vgrad(_color(rng, [0.9, 0.75, 0.45]), _color(rng, [0.8, 0.6, 0.35]), SIZE - y)
    x0 = int(rng.uniform(0.1, 0.5) * SIZE) // 8 * 8
    y0 = y + (SIZE - y) // 2 // 8 * 8
    img[y0:, x0:x0 + 48] = _textured(rng, _color(rng, [0.55, 0.5, 0.45]), 0.6, 2, SIZE - y0, 48)[:, :SIZE - x0]
    return img


def forest(rng):
    y = _split(rng, 0.2, 0.35)
    img = _sky(rng, SIZE)
    img[y:] = _textured(rng, _color(rng, [0.12, 0.35, 0.12]), 0.6, 6, SIZE - y, octaves=4)
    for _ in range(int(rng.integers(3, 6))):
        x = int(rng.uniform(0, SIZE - 8))
        img[y + 24:, x:x + 6] = _color(rng, [0.3, 0.2, 0.12], 0.03)
    return img


def room(rng):
    y = _split(rng, 0.55, 0.75)
    img = np.broadcast_to(_color(rng, [0.85, 0.8, 0.7]), (SIZE, SIZE, 3)).copy()
    x = int(rng.uniform(0.2, 0.6) * SIZE) // 8 * 8
    img[16:y - 16, x:x + 32] = _color(rng, [0.5, 0.6, 0.8])  # window
    img[y:] = _textured(rng, _color(rng, [0.45, 0.3, 0.2]), 0.4, 8, SIZE - y)
    return img


def mountains(rng):
    img = _sky(rng, SIZE)
    base = int(SIZE * rng.uniform(0.45, 0.6))
    ridge = base - (value_noise(rng, SIZE, 32, 2)[0] * 50).astype(int)
    rock = _textured(rng, _color(rng, [0.4, 0.38, 0.36]), 0.45, 8, SIZE)
    snow = _color(rng, [0.95, 0.95, 0.97], 0.02)
    for c in range(SIZE):
        img[ridge[c]:, c] = rock[ridge[c]:, c]
        img[ridge[c]:ridge[c] + 6, c] = snow
    img[base + 24:] = _vgrad(_color(rng, [0.3, 0.45, 0.25]), _color(rng, [0.25, 0.4, 0.2]), SIZE - base - 24)
    return img


def night_city(rng):
    img = _vgrad(_color(rng, [0.02, 0.02, 0.1], 0.02), _color(rng, [0.1, 0.08, 0.25], 0.03), SIZE)
    x = 0
    while x < SIZE:
        w = int(rng.integers(2, 5)) * 8
        top = int(rng.uniform(0.25, 0.7) * SIZE) // 8 * 8
        img[top:, x:x + w] = _color(rng, [0.12, 0.12, 0.15], 0.03)
        win = rng.random(((SIZE - top) // 8 + 1, w // 4 + 1)) < 0.35
        for r in range(top + 4, SIZE - 4, 8):
            for c in range(x + 2, min(x + w, SIZE) - 2, 4):
                if win[(r - top) // 8, (c - x) // 4]:
                    img[r:r + 3, c:c + 2] = _color(rng, [0.95, 0.85, 0.4], 0.05)
        x += w
    return img


def gravel_path(rng):
    y = _split(rng, 0.2, 0.35)
    img = _sky(rng, SIZE)
    img[y:] = _textured(rng, _color(rng, [0.3, 0.5, 0.22]), 0.45, 8, SIZE - y)
    path = _textured(rng, _color(rng, [0.6, 0.58, 0.55]), 0.7, 2, SIZE - y)
    centre = int(SIZE * rng.uniform(0.35, 0.65))
    for r in range(SIZE - y):
        half = 2 + r // 3
        a, b = max(centre - half, 0), min(centre + half, SIZE)
        img[y + r, a:b] = path[r, a:b]
    return img


def snowfield(rng):
    y = _split(rng, 0.3, 0.5)
    img = _vgrad(_color(rng, [0.6, 0.7, 0.85]), _color(rng, [0.85, 0.88, 0.92]), SIZE)
    img[y:] = _vgrad(_color(rng, [0.97, 0.97, 1.0], 0.02), _color(rng, [0.85, 0.87, 0.92], 0.02), SIZE - y)
    for _ in range(int(rng.integers(1, 3))):
        x = int(rng.uniform(0, SIZE - 24)) // 8 * 8
        img[y - 16:y + 16, x:x + 24] = _textured(rng, _color(rng, [0.1, 0.3, 0.15]), 0.5, 2, 32, 24)
    return img


GENERATORS: Dict[str, Callable] = {name: globals()[name] for name in CLASSES}


def render(class_id: int, index: int, seed: int = 0) -> np.ndarray:
    """One scene as uint8 [SIZE, SIZE, 3]; the same (class, index, seed) always gives the same pixels."""
    rng = np.random.default_rng([seed, class_id, index])
    img = GENERATORS[CLASSES[class_id]](rng)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def dataset(n_per_class: int, seed: int = 0, start: int = 0):
    """Yields (class_id, uint8 image) for indices [start, start + n_per_class) of every class, interleaved."""
    for i in range(start, start + n_per_class):
        for c in range(len(CLASSES)):
            yield c, render(c, i, seed)
