"""The `adt-tree` command line: generate's contract, clear errors, and bench's JSON."""
import json

import pytest
from PIL import Image

from adt_core.cli import main


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from adt_core.demo.train import DemoRecipe, train_demo
    return train_demo(str(tmp_path_factory.mktemp("smoke")), DemoRecipe.smoke(), show_progress=False,
                      log=lambda *_: None)


def models(p, draft=True):
    args = ["--gpt", p["gpt"], "--vq", p["vq"], "--device", "cpu", "--dtype", "fp32"]
    return args + (["--draft", p["draft"]] if draft else [])


def test_generate_writes_images_stats_tokens_heatmaps(smoke, tmp_path):
    out = tmp_path / "out"
    rc = main(["generate", *models(smoke), "--class-label", "0", "seaside", "--out", str(out), "--seed", "3",
               "--tokens", str(tmp_path / "tok.json"), "--temperature", "0"])
    assert rc == 0
    assert Image.open(out / "0000.png").size == (128, 128) and (out / "0001.png").exists()
    stats = json.load(open(out / "stats.json"))
    assert len(stats) == 2
    for key in ("method", "tokens", "target_forwards", "draft_forwards", "mean_accepted_length",
                "accepted_length_grid", "wall_seconds", "tokens_per_second", "temperature", "top_k", "top_p",
                "cfg_scale", "cfg_interval", "seed", "adt_variant", "node_budget", "trace"):
        assert key in stats[0], key
    assert stats[0]["method"] == "adt" and stats[0]["tokens"] == 256
    assert (out / "heatmap_0000.png").exists() and (out / "heatmap_0001.png").exists()
    tokens = json.load(open(tmp_path / "tok.json"))["tokens"]
    assert len(tokens) == 2 and len(tokens[0]) == 256
    # greedy speculative tokens equal greedy vanilla tokens, through the CLI too
    rc = main(["generate", *models(smoke), "--class-label", "0", "seaside", "--out", str(tmp_path / "v"),
               "--method", "vanilla", "--tokens", str(tmp_path / "vtok.json"), "--temperature", "0"])
    assert rc == 0 and json.load(open(tmp_path / "vtok.json"))["tokens"] == tokens


def test_single_png_output_and_lantern_label(smoke, tmp_path):
    png = tmp_path / "one.png"
    assert main(["generate", *models(smoke), "--out", str(png), "--lantern-k", "8", "--heatmap",
                 str(tmp_path / "h.png")]) == 0
    assert png.exists() and (tmp_path / "h.png").exists()
    stats = json.load(open(tmp_path / "one.stats.json"))
    assert stats[0]["method"] == "adt+lantern" and stats[0]["lantern_k"] == 8


def test_clear_errors(smoke, tmp_path, capsys):
    assert main(["generate", *models(smoke, draft=False), "--method", "eagle2", "--out", str(tmp_path)]) == 2
    assert "needs a draft head" in capsys.readouterr().err
    assert main(["generate", *models(smoke), "--class-label", "0", "1", "--out", str(tmp_path / "x.png")]) == 2
    assert "give a folder" in capsys.readouterr().err
    assert main(["generate", *models(smoke), "--class-label", "unicorn", "--out", str(tmp_path)]) == 2
    assert "neither an integer nor a class name" in capsys.readouterr().err
    assert main(["generate", "--gpt", smoke["gpt"], "--out", str(tmp_path)]) == 2
    assert "--gpt needs --vq" in capsys.readouterr().err


def test_bench_json_rows(smoke, tmp_path):
    path = tmp_path / "bench.json"
    assert main(["bench", *models(smoke), "--images", "1", "--repeats", "1", "--no-ablation",
                 "--json", str(path), "--markdown", str(tmp_path / "B.md"), "--lantern-k", "8"]) == 0
    res = json.load(open(path))
    assert {"device", "torch", "rows"} <= res.keys()
    names = {(r["method"], r["temperature"]) for r in res["rows"]}
    assert names == {(m, t) for m in ("vanilla", "static", "eagle2", "adt", "adt+lantern") for t in (1.0, 0.0)}
    for r in res["rows"]:
        assert {"mean_accepted_length", "target_forwards_per_image", "seconds_per_image", "speedup",
                "lossless"} <= r.keys()
        if r["method"] != "adt+lantern":
            assert r["lossless"] is True
        if r["method"] == "vanilla":
            assert r["speedup"] == 1.0 and r["target_forwards_per_image"] == 256
    assert "| adt |" in open(tmp_path / "B.md").read()
