"""Human-readable summaries of generation statistics: one run, or a fast-vs-baseline comparison."""
from typing import Dict, List, Sequence


def _mean(rows: Sequence[dict], key: str) -> float:
    return sum(r[key] for r in rows) / max(len(rows), 1)


def summarize(stats: Sequence[dict]) -> Dict[str, float]:
    """Aggregate per-image stats dicts: totals and means that are comparable between runs."""
    tokens = sum(s["tokens"] for s in stats)
    wall = sum(s["wall_seconds"] for s in stats)
    return {
        "method": stats[0]["method"] if stats else "",
        "images": len(stats),
        "tokens": tokens,
        "target_forwards": sum(s["target_forwards"] for s in stats),
        "draft_forwards": sum(s["draft_forwards"] for s in stats),
        "mean_accepted_length": round(_mean(stats, "mean_accepted_length"), 3),
        "wall_seconds": round(wall, 3),
        "tokens_per_second": round(tokens / wall, 1) if wall > 0 else 0.0,
    }


def format_stats(stats: Sequence[dict]) -> str:
    s = summarize(stats)
    return (f"{s['method']}: {s['images']} image(s), {s['tokens']} tokens in {s['target_forwards']} target "
            f"forwards (+{s['draft_forwards']} draft), mean accepted length {s['mean_accepted_length']:.2f}, "
            f"{s['wall_seconds']:.2f} s, {s['tokens_per_second']:.0f} tokens/s")


def compare_table(fast: Sequence[dict], baseline: Sequence[dict]) -> str:
    """A small fixed-width table: baseline vs fast, with the speedup measured from wall time."""
    a, b = summarize(baseline), summarize(fast)
    speed = a["wall_seconds"] / b["wall_seconds"] if b["wall_seconds"] > 0 else float("nan")
    fwd = a["target_forwards"] / max(b["target_forwards"], 1)
    lines: List[str] = [
        f"{'':22}{a['method']:>14}{b['method']:>14}",
        f"{'images':22}{a['images']:>14}{b['images']:>14}",
        f"{'target forwards':22}{a['target_forwards']:>14}{b['target_forwards']:>14}",
        f"{'mean accepted length':22}{a['mean_accepted_length']:>14.2f}{b['mean_accepted_length']:>14.2f}",
        f"{'seconds':22}{a['wall_seconds']:>14.2f}{b['wall_seconds']:>14.2f}",
        f"{'tokens / second':22}{a['tokens_per_second']:>14.1f}{b['tokens_per_second']:>14.1f}",
        f"speedup {speed:.2f}x (wall time), {fwd:.2f}x fewer target forwards",
    ]
    return "\n".join(lines)
