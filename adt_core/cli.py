"""`adt-tree`: generate images, benchmark methods side by side, train the demo model.

With no model arguments every command uses the bundled demo model (GPT, VQ and draft head).
"""
import argparse
import json
import os
import sys
from typing import List, Optional

from . import __version__
from .errors import CheckpointError, InputError

SPEC_METHODS = ("vanilla", "static", "eagle2", "adt")


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (default: the bundled demo)")
    g.add_argument("--gpt", help="LlamaGen GPT checkpoint (.pt/.pth/.safetensors)")
    g.add_argument("--vq", help="VQ tokenizer checkpoint (required with --gpt)")
    g.add_argument("--draft", help="EAGLE/LANTERN draft head (folder with config.json, or file)")
    g.add_argument("--image-size", type=int, help="image size in pixels (default: from the file name, else 256)")
    g.add_argument("--t5", metavar="DIR", help="local T5 encoder folder (flan-t5-xl) for LlamaGen text-to-image")
    g.add_argument("--janus", metavar="DIR", help="local Janus-Pro folder (transformers layout) instead of --gpt/--vq")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    g.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults: the model's own, else these)")
    g.add_argument("--temperature", type=float, default=None, help="0 = greedy (default 1.0)")
    g.add_argument("--top-k", type=int, default=None, help="0 = off (default 0; the demo uses its own)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance (default 4.0)")
    g.add_argument("--cfg-interval", type=int, default=-1, help="drop guidance after this many tokens (-1 = never)")


def add_tree_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("draft trees")
    g.add_argument("--depth", type=int, default=None, help="EAGLE-2 draft levels (default 5; ADT initial depth)")
    g.add_argument("--width", type=int, default=None, help="EAGLE-2 top-k per expansion (default 10; ADT initial)")
    g.add_argument("--node-budget", default=None,
                   help="draft nodes verified per round: N, or 'auto' (cost-aware; default auto)")
    g.add_argument("--static-tree", default="auto-24", help="'auto-N' or a JSON list of rank paths")
    g.add_argument("--adt-variant", default="bisect",
                   choices=["bisect", "step", "binary", "length", "window", "2d", "none"])
    g.add_argument("--adt-depth-min", type=int, default=None)
    g.add_argument("--adt-depth-max", type=int, default=None)
    g.add_argument("--adt-width-min", type=int, default=None)
    g.add_argument("--adt-width-max", type=int, default=None)
    g.add_argument("--adt-beta", type=float, default=None)
    g = p.add_argument_group("LANTERN relaxed acceptance (off unless --lantern-k > 0)")
    g.add_argument("--lantern-k", type=int, default=0, help="latent neighbours per token (e.g. 100)")
    g.add_argument("--lantern-delta", type=float, default=0.1, help="absolute TVD budget per step")
    g.add_argument("--lantern-lambda", type=float, default=0.0, help="LANTERN++ relative budget (> 1; replaces delta)")
    g.add_argument("--lantern-legacy", action="store_true",
                   help="reproduce upstream's zeroing of k+1 neighbours on rejection")


def load_pipeline(a):
    from .demo import demo_available, demo_paths
    from .pipeline import Pipeline
    if a.janus:
        if a.gpt is not None or a.vq is not None or a.t5:
            raise InputError("--janus replaces --gpt/--vq/--t5 (Janus-Pro has its own tokenizer and VQ decoder)")
        return Pipeline.load_janus(a.janus, a.draft, a.device, a.dtype)
    if a.gpt is None:
        if a.vq is not None or a.draft is not None:
            raise InputError("--vq/--draft without --gpt: give --gpt too, or none of them for the demo model")
        if not demo_available():
            raise InputError("no model given and the bundled demo weights are missing "
                             "(reinstall the package, or run `adt-tree train-demo`)")
        p = demo_paths()
        return Pipeline.load(p["gpt"], p["vq"], p["draft"], a.image_size, a.device, a.dtype)
    if a.vq is None:
        raise InputError("--gpt needs --vq (the tokenizer that decodes its tokens)")
    return Pipeline.load(a.gpt, a.vq, a.draft, a.image_size, a.device, a.dtype, t5=a.t5)


def model_defaults(pipe) -> dict:
    return dict(pipe.target.sampling_defaults)


def conditions_from(a, pipe) -> list:
    """--prompt for text models (one image per prompt), class labels otherwise."""
    prompts = list(a.prompt or [])
    if pipe.target.takes_prompts:
        if not prompts:
            raise InputError("this is a text-to-image model: give --prompt TEXT [TEXT ...]")
        if a.class_label:
            raise InputError("--class-label is for class-conditional models; this model takes --prompt")
        return prompts
    if prompts:
        raise InputError("this model is class-conditional: use --class-label, not --prompt")
    return parse_labels(a.class_label, pipe)


def sampling_from(a, pipe, temperature: Optional[float] = None):
    from .engine.sampling import SamplingConfig
    d = model_defaults(pipe)
    t = temperature if temperature is not None else (a.temperature if a.temperature is not None
                                                      else d.get("default_temperature", 1.0))
    return SamplingConfig(temperature=t, top_k=a.top_k if a.top_k is not None else d.get("default_top_k", 0),
                          top_p=a.top_p, cfg_scale=a.cfg_scale if a.cfg_scale is not None
                          else d.get("default_cfg_scale", 4.0), cfg_interval=a.cfg_interval)


def options_from(a, method: str, pipe):
    from .pipeline import SpecOptions
    d = model_defaults(pipe).get("adt_defaults", {})
    o = SpecOptions(method=method)
    pick = lambda cli, key: cli if cli is not None else d.get(key, getattr(o, key))  # noqa: E731
    o.depth, o.width = pick(a.depth, "depth"), pick(a.width, "width")
    o.node_budget = pick(a.node_budget, "node_budget") if a.node_budget is not None else d.get("node_budget", "auto")
    o.static_tree = a.static_tree if a.static_tree != "auto-24" else d.get("static_tree", a.static_tree)
    o.adt_variant = a.adt_variant
    for f in ("adt_depth_min", "adt_depth_max", "adt_width_min", "adt_width_max", "adt_beta"):
        setattr(o, f, pick(getattr(a, f), f))
    o.adt_depth_init, o.adt_width_init = o.depth, o.width
    o.lantern_k, o.lantern_delta = a.lantern_k, a.lantern_delta
    o.lantern_lambda, o.lantern_legacy = a.lantern_lambda, a.lantern_legacy
    return o


def parse_labels(values: Optional[List[str]], pipe) -> List[int]:
    """Class labels as integers or, for models that name their classes (the demo), names."""
    names = model_defaults(pipe).get("classes", [])
    out = []
    for v in values or ["0"]:
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            if part.lstrip("-").isdigit():
                out.append(int(part))
            elif part in names:
                out.append(names.index(part))
            else:
                hint = f" (names: {', '.join(names)})" if names else ""
                raise InputError(f"class label {part!r} is neither an integer nor a class name{hint}")
    return out


def output_paths(out: Optional[str], n: int):
    """-> (image paths, default stats path, heatmap stem)."""
    out = out or "adt-tree-out"
    if out.lower().endswith(".png"):
        if n != 1:
            raise InputError(f"--out {out} names one PNG but {n} images are generated; give a folder")
        stem = out[:-4]
        return [out], stem + ".stats.json", stem + ".heatmap"
    return [os.path.join(out, f"{i:04d}.png") for i in range(n)], os.path.join(out, "stats.json"), \
        os.path.join(out, "heatmap")


def progress_bar(total: int):
    from tqdm import tqdm
    from .engine.hooks import Hooks
    bar = tqdm(total=total, unit="tok", desc="generating", file=sys.stderr)
    state = {"base": 0, "image": 0, "done": 0}

    def progress(image, done, total_img, _tokens):
        if image != state["image"]:
            state["base"] += total_img
            state["image"], state["done"] = image, 0
        bar.update(done - state["done"])
        state["done"] = done
    return Hooks(progress=progress), bar


def cmd_generate(a) -> int:
    from PIL import Image
    from .heatmap import render_heatmap
    from .report import format_stats
    pipe = load_pipeline(a)
    method = a.method or ("adt" if pipe.draft is not None else "vanilla")
    if method != "vanilla" and pipe.draft is None:
        raise InputError(f"--method {method} needs a draft head: pass --draft PATH (or use --method vanilla)")
    labels = conditions_from(a, pipe)
    images, stats_path, heat_stem = output_paths(a.out, len(labels))
    hooks, bar = progress_bar(len(labels) * pipe.target.n_tokens)
    res = pipe.generate(labels, options_from(a, method, pipe), sampling_from(a, pipe), a.seed, hooks)
    bar.close()
    arr = (res.images.numpy() * 255 + 0.5).clip(0, 255).astype("uint8")
    for path, img in zip(images, arr):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        Image.fromarray(img).save(path)
    stats = [dict(s.to_dict(), image=p) for s, p in zip(res.stats, images)]
    with open(a.stats or stats_path, "w") as f:
        json.dump(stats, f, indent=1)
    heat = a.heatmap or heat_stem + ".png"
    for i, (st, img) in enumerate(zip(stats, res.images.numpy())):
        path = heat if len(stats) == 1 else f"{os.path.splitext(heat)[0]}_{i:04d}.png"
        render_heatmap(st, image=img).save(path)
    if a.tokens:
        with open(a.tokens, "w") as f:
            json.dump({"tokens": res.tokens}, f)
    print(format_stats(stats))
    print(f"wrote {len(images)} image(s) to {os.path.dirname(os.path.abspath(images[0]))}, stats to "
          f"{a.stats or stats_path}, heatmap to {heat}")
    return 0


def cmd_train_demo(a) -> int:
    from .demo import WEIGHTS_DIR
    from .demo.train import DemoRecipe, train_demo
    r = DemoRecipe.smoke() if a.smoke else DemoRecipe()
    r.seed, r.threads = a.seed, a.threads
    paths = train_demo(a.out or WEIGHTS_DIR, r)
    print(json.dumps(paths, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adt-tree", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate images (default: the bundled demo model, ADT-Tree)")
    add_model_args(g)
    g.add_argument("--class-label", nargs="*", help="class ids (or demo class names); one image each")
    g.add_argument("--prompt", nargs="+", metavar="TEXT",
                   help="text prompts (t2i with --t5, or --janus); one image each")
    g.add_argument("--method", choices=SPEC_METHODS, help="default: adt with a draft head, else vanilla")
    add_sampling_args(g)
    add_tree_args(g)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", help="PNG file (one image) or folder (0000.png, ...); default ./adt-tree-out")
    g.add_argument("--stats", help="per-image statistics JSON (default: beside the images)")
    g.add_argument("--tokens", help="write {'tokens': [[...], ...]} (raster order) to this JSON file")
    g.add_argument("--heatmap", help="accepted-length heatmap PNG (default: beside the images)")
    g.set_defaults(func=cmd_generate)

    from .bench import add_bench_parser
    add_bench_parser(sub, add_model_args, add_sampling_args, add_tree_args)

    from .training.train_draft_cli import add_train_draft_parser
    add_train_draft_parser(sub, add_model_args, add_sampling_args)

    t = sub.add_parser("train-demo", help="train the bundled demo model from scratch (about an hour on 2 cores)")
    t.add_argument("--out", help="output folder (default: the package's demo weights folder)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--smoke", action="store_true", help="toy sizes, seconds (for testing the pipeline)")
    t.set_defaults(func=cmd_train_demo)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, InputError) as e:
        print(f"adt-tree: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
