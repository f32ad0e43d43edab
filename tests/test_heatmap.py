"""Accepted-length statistics and their heatmap."""
import numpy as np

from adt_core.engine.sampling import SamplingConfig
from adt_core.heatmap import render_heatmap, run_lengths
from adt_core.pipeline import SpecOptions
from tiny_models import markov_gpt, oracle_draft, pipeline


def test_grid_sums_to_tokens_and_heatmap_paints_runs():
    gpt = markov_gpt(grid=(6, 6), attn_scale=0.006, seed=5)
    pipe = pipeline(gpt, oracle_draft(markov_gpt(grid=(6, 6), attn_scale=0.0, seed=5)))
    out = pipe.generate([2], SpecOptions("adt"), SamplingConfig(temperature=0), decode=False)
    st = out.stats[0].to_dict()
    grid = np.array(st["accepted_length_grid"])
    assert grid.shape == (6, 6) and grid.sum() == 36 == st["tokens"]
    dense = run_lengths(grid).reshape(-1)
    trace = [(r[0], r[4]) for r in st["trace"]]
    for pos, acc in trace:                   # every committed run is painted with its own length
        assert (dense[pos + 1: pos + 1 + acc] == acc).all()
    img = render_heatmap(st, size=96, legend=True)
    assert img.size[0] == 96 and img.size[1] > 96          # legend strip below the map
    plain = np.asarray(render_heatmap(st, size=96, legend=False))
    longest = int(np.argmax(dense))
    r, c = divmod(longest, 6)
    cell = plain[r * 16 + 8, c * 16 + 8].astype(int)
    assert cell.sum() > plain[0, 0].astype(int).sum() or dense[0] == dense.max()  # long runs are brighter


def test_overlay_keeps_image_resolution():
    st = {"accepted_length_grid": [[1, 2, 0, 1]]}
    img = np.zeros((8, 32, 3), dtype=np.float32)
    out = render_heatmap(st, image=img, legend=False)
    assert out.size == (32, 8)
