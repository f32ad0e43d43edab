"""`adt-tree bench`: every method side by side on one model, with the same labels and seeds.

Rows: vanilla, static tree, EAGLE-2, ADT-Tree (and each controller variant, for the ablation), ADT-Tree +
LANTERN; at temperature 1 (the model's usual top-k) and 0. Each method is warmed up once, then the
repeats run round-robin over all methods (so slow drift of the machine affects every row alike), and the
median seconds per image is reported. Speedup is against vanilla at the same temperature; `lossless`
says whether the method's greedy tokens equal vanilla's (LANTERN is lossy by design). Images are generated
one at a time for every method (batch 1), so batched vanilla decoding does not distort the comparison.
"""
import json
import platform
import statistics
import time
from dataclasses import replace
from typing import Dict, List

import torch

VARIANTS = ("step", "binary", "length", "window", "2d")


def bench_rows(base, variants, lantern_k: int, lantern_delta: float) -> Dict[str, object]:
    """name -> SpecOptions, all derived from one base so they share tree sizes and node budget."""
    rows = {"vanilla": replace(base, method="vanilla"), "static": replace(base, method="static"),
            "eagle2": replace(base, method="eagle2"), "adt": replace(base, method="adt", adt_variant="bisect")}
    for v in variants:
        rows[f"adt:{v}"] = replace(base, method="adt", adt_variant=v)
    rows["adt+lantern"] = replace(base, method="adt", adt_variant="bisect", lantern_k=lantern_k,
                                  lantern_delta=lantern_delta)
    return rows


def _run(pipe, labels, opt, sampling, seed):
    """Every method, vanilla included, generates one image at a time (batch 1, as speculative-decoding
    speedups are defined): image i uses seed + i."""
    stats, tokens = [], []
    for i, label in enumerate(labels):
        res = pipe.generate([label], opt, sampling, seed + i, decode=False)
        stats += res.stats
        tokens += res.tokens
    n = len(labels)
    return {"tokens": tokens, "seconds_per_image": sum(s.wall_seconds for s in stats) / n,
            "mean_accepted_length": sum(s.mean_accepted_length for s in stats) / n,
            "target_forwards_per_image": sum(s.target_forwards for s in stats) / n,
            "draft_forwards_per_image": sum(s.draft_forwards for s in stats) / n}


def run_bench(pipe, rows: Dict[str, object], samplings: Dict[float, object], labels: List[int], seed: int,
              repeats: int, log=print) -> dict:
    out_rows = []
    greedy_tokens = {}
    for temp, sampling in samplings.items():
        results = {name: [] for name in rows}
        for name, opt in rows.items():  # warm-up (also builds cost profiles and LANTERN tables)
            _run(pipe, labels[:1], opt, sampling, seed)
        for r in range(repeats):
            for name, opt in rows.items():
                results[name].append(_run(pipe, labels, opt, sampling, seed))
            log(f"T={temp}: repeat {r + 1}/{repeats} done")
        base = statistics.median(x["seconds_per_image"] for x in results["vanilla"])
        for name, runs in results.items():
            sec = statistics.median(x["seconds_per_image"] for x in runs)
            if temp == 0:
                greedy_tokens[name] = runs[0]["tokens"]
            out_rows.append({
                "method": name, "temperature": temp, "top_k": sampling.top_k, "cfg_scale": sampling.cfg_scale,
                "mean_accepted_length": round(runs[0]["mean_accepted_length"], 3),
                "target_forwards_per_image": round(runs[0]["target_forwards_per_image"], 2),
                "draft_forwards_per_image": round(runs[0]["draft_forwards_per_image"], 2),
                "seconds_per_image": round(sec, 4),
                "seconds_all_repeats": [round(x["seconds_per_image"], 4) for x in runs],
                "speedup": round(base / sec, 3),
            })
    if 0.0 not in samplings:  # lossless is defined on greedy tokens: one untimed greedy pass per method
        greedy = replace(next(iter(samplings.values())), temperature=0.0)
        for name, opt in rows.items():
            greedy_tokens[name] = _run(pipe, labels, opt, greedy, seed)["tokens"]
    for row in out_rows:
        row["lossless"] = greedy_tokens[row["method"]] == greedy_tokens["vanilla"]
    return {"rows": out_rows}


def environment(pipe) -> dict:
    dev = pipe.device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    return {"device": f"{dev.type}: {name}", "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
            "dtype": str(pipe.target.dtype).replace("torch.", "")}


def format_table(result: dict) -> str:
    head = f"{'method':14}{'T':>5}{'accept len':>12}{'target fwd':>12}{'s/image':>10}{'speedup':>9}  lossless"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['method']:14}{r['temperature']:>5g}{r['mean_accepted_length']:>12.2f}"
                     f"{r['target_forwards_per_image']:>12.1f}{r['seconds_per_image']:>10.3f}"
                     f"{r['speedup']:>8.2f}x  {'yes' if r['lossless'] else 'no'}")
    return "\n".join(lines)


def markdown(result: dict, command: str) -> str:
    e = result
    lines = [f"Measured {e['date']} on {e['device']} ({e['threads']} threads), torch {e['torch']}, "
             f"Python {e['python']}, {e['dtype']}; {e['images']} images x {e['repeats']} repeats (median).",
             "", f"Command: `{command}`", "",
             "| method | T | mean accepted length | target forwards / image | s / image | speedup vs vanilla | "
             "lossless (greedy = vanilla) |", "|---|---|---|---|---|---|---|"]
    for r in e["rows"]:
        lines.append(f"| {r['method']} | {r['temperature']:g} | {r['mean_accepted_length']:.2f} | "
                     f"{r['target_forwards_per_image']:.1f} | {r['seconds_per_image']:.3f} | "
                     f"{r['speedup']:.2f}x | {'yes' if r['lossless'] else 'no'} |")
    return "\n".join(lines)


def cmd_bench(a) -> int:
    from .cli import conditions_from, load_pipeline, model_defaults, options_from, sampling_from
    if a.threads:
        torch.set_num_threads(a.threads)
    pipe = load_pipeline(a)
    if pipe.draft is None:
        from .errors import InputError
        raise InputError("bench compares speculative methods: it needs a draft head (--draft)")
    names = model_defaults(pipe).get("classes", [])
    if a.class_label or a.prompt or pipe.target.takes_prompts:
        labels = conditions_from(a, pipe)
    else:  # class models: cycle through the classes
        labels = [i % max(len(names), 1) for i in range(a.images)]
    base = options_from(a, "adt", pipe)
    d = model_defaults(pipe).get("adt_defaults", {})
    rows = bench_rows(base, [] if a.no_ablation else VARIANTS, a.lantern_k or d.get("lantern_k", 32),
                      a.lantern_delta if a.lantern_k else d.get("lantern_delta", a.lantern_delta))
    if a.methods:
        rows = {k: v for k, v in rows.items() if k in a.methods or k == "vanilla"}
    samplings = {float(t): sampling_from(a, pipe, float(t)) for t in a.temperatures}
    result = {**environment(pipe), "images": len(labels), "repeats": a.repeats, "labels": labels, "seed": a.seed,
              "model": {k: v for k, v in {"gpt": pipe.names.get("gpt"), "draft": pipe.names.get("draft")}.items()},
              "options": {k: v.to_dict() for k, v in rows.items()}}
    result.update(run_bench(pipe, rows, samplings, labels, a.seed, a.repeats,
                            log=lambda m: print(m, flush=True)))
    print(format_table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    if a.markdown:
        import sys
        with open(a.markdown, "w") as f:
            f.write(markdown(result, "adt-tree " + " ".join(sys.argv[1:])) + "\n")
    return 0


def add_bench_parser(sub, add_model_args, add_sampling_args, add_tree_args) -> None:
    b = sub.add_parser("bench", help="vanilla vs static vs EAGLE-2 vs ADT-Tree (+ablation) vs +LANTERN")
    add_model_args(b)
    add_sampling_args(b)
    add_tree_args(b)
    b.add_argument("--images", type=int, default=4, help="images per method (labels cycle through classes)")
    b.add_argument("--class-label", nargs="*")
    b.add_argument("--prompt", nargs="*", help="text models: one image per prompt (instead of --images)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--temperatures", nargs="+", default=["1.0", "0"])
    b.add_argument("--methods", nargs="*", help="subset of rows (vanilla is always included)")
    b.add_argument("--no-ablation", action="store_true", help="skip the adt:<variant> rows")
    b.add_argument("--threads", type=int, help="CPU threads for torch (default: PyTorch's choice)")
    b.add_argument("--json", help="write the full result JSON here")
    b.add_argument("--markdown", help="write a BENCHMARKS.md-style table here")
    b.set_defaults(func=cmd_bench)
