"""The demo pipeline: deterministic procedural data, a training smoke run, and the shipped weights."""
import os

import numpy as np
import pytest
import torch

from adt_core.demo import demo_available, demo_paths
from adt_core.demo.scenes import CLASSES, render


def test_scenes_are_deterministic():
    for c in range(len(CLASSES)):
        assert np.array_equal(render(c, 3, seed=1), render(c, 3, seed=1))
        assert not np.array_equal(render(c, 3, seed=1), render(c, 4, seed=1))
        assert render(c, 0).shape == (128, 128, 3) and render(c, 0).dtype == np.uint8


def texture_features(img):
    """Texture only (no colour): horizontal/vertical gradient energy and how flat the 8x8 patches are."""
    g = img.astype(float).mean(-1)
    patches = g.reshape(16, 8, 16, 8).std(axis=(1, 3))
    return np.array([np.abs(np.diff(g, axis=1)).mean(), np.abs(np.diff(g, axis=0)).mean(),
                     (patches < 2.0).mean(), np.percentile(patches, 90), np.median(patches)])


def test_classes_differ_in_texture_statistics():
    """Texture features alone tell the classes apart (nearest centroid on held-out scenes), and every
    class mixes flat and textured patches."""
    train = np.array([[texture_features(render(c, i)) for i in range(8)] for c in range(len(CLASSES))])
    mu, sd = train.reshape(-1, 5).mean(0), train.reshape(-1, 5).std(0) + 1e-9
    centroids = ((train - mu) / sd).mean(1)
    correct = 0
    for c in range(len(CLASSES)):
        for i in range(100, 106):
            f = (texture_features(render(c, i)) - mu) / sd
            correct += int(np.argmin(((centroids - f) ** 2).sum(1)) == c)
    assert correct / (6 * len(CLASSES)) > 0.6          # chance is 0.1
    flat = train[:, :, 2].mean(1)
    for c in range(len(CLASSES)):
        assert 0.05 < flat[c] < 0.95, CLASSES[c]


def test_training_smoke_lowers_losses(tmp_path):
    import json
    from adt_core.demo.train import DemoRecipe, train_demo
    r = DemoRecipe.smoke()
    r.vq_steps, r.gpt_steps, r.draft_steps = 30, 40, 40
    paths = train_demo(str(tmp_path), r, show_progress=False, log=lambda *_: None)
    logs = [json.loads(line) for line in open(tmp_path / "train_log.jsonl")]
    for stage, key in (("vq", "loss"), ("gpt", "loss"), ("draft", "loss")):
        vals = [x[key] for x in logs if x["stage"] == stage]
        assert vals[-1] < vals[0], stage
    from adt_core.pipeline import Pipeline
    pipe = Pipeline.load(paths["gpt"], paths["vq"], paths["draft"], device="cpu", dtype="fp32")
    assert pipe.target.grid == (16, 16)


needs_demo = pytest.mark.skipif(not demo_available(), reason="bundled demo weights not present")


@needs_demo
def test_shipped_demo_loads_generates_and_drafts_well():
    from adt_core.engine.sampling import SamplingConfig
    from adt_core.pipeline import Pipeline, SpecOptions
    p = demo_paths()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.dirname(p["gpt"]))
                for f in fs)
    assert total <= 30 * 2 ** 20
    pipe = Pipeline.load(p["gpt"], p["vq"], p["draft"], device="cpu", dtype="fp32")   # the official loaders
    assert pipe.target.grid == (16, 16)
    s = SamplingConfig(temperature=0, cfg_scale=4.0)
    out = pipe.generate([0, 3], SpecOptions("eagle2", depth=5, width=10, node_budget=58), s)
    assert out.images.shape == (2, 128, 128, 3) and out.images.dtype == torch.float32
    assert 0.0 <= float(out.images.min()) and float(out.images.max()) <= 1.0
    assert min(st.mean_accepted_length for st in out.stats) > 1.5
    assert out.tokens == pipe.generate([0, 3], SpecOptions("vanilla"), s, decode=False).tokens
