"""Transfer results over several seeds in one command, as the papers report them.

Every paper averages its transfer numbers over runs (MLS: 5 runs of VOC detection, 3 of
Cityscapes, 2 of classification; MoCo: 5 of VOC). A recipe given ``--seeds 0,1,2`` runs
:func:`run_seeds`: each seed in a folder of its own (``seed_<s>/``), a seed whose result is
already written is not run again (the same command resumes an interrupted series), then the
rows and their mean ± std (n) are printed and returned for ``metrics.json`` and the card.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable

__all__ = ["run_seeds", "mean_std", "flatten", "seeds_table", "RESULT"]

#: what a finished seed leaves in its folder
RESULT = "result.json"


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metric dicts as one level: ``{"bbox": {"AP": 1}}`` -> ``{"bbox/AP": 1.0}``; non-numbers dropped.

    Example:
        >>> flatten({"bbox": {"AP": 40.0, "AP50": 60.0}, "top1": 70, "name": "x"})
        {'bbox/AP': 40.0, 'bbox/AP50': 60.0, 'top1': 70.0}
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[f"{prefix}{key}"] = float(value)
    return out


def mean_std(rows: list[dict[str, float]]) -> dict[str, tuple[float, float, int]]:
    """Per key: (mean, sample standard deviation (0 for one run), n) over the rows that have it.

    Example:
        >>> mean_std([{"AP": 40.0}, {"AP": 42.0}])
        {'AP': (41.0, 1.4142135623730951, 2)}
    """
    keys = sorted({k for row in rows for k in row})
    out = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        out[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))
    return out


def seeds_table(per_seed: dict[int, dict[str, float]], keys: list[str]) -> str:
    """Markdown: one row per seed, then mean ± std (n)."""
    lines = ["| seed | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for seed, row in per_seed.items():
        lines.append(f"| {seed} | " + " | ".join(f"{row[k]:.2f}" if k in row else "" for k in keys) + " |")
    summary = mean_std(list(per_seed.values()))
    lines.append("| mean ± std (n) | " + " | ".join(
        f"{summary[k][0]:.2f} ± {summary[k][1]:.2f} ({summary[k][2]})" if k in summary else "" for k in keys) + " |")
    return "\n".join(lines)


def run_seeds(seeds: list[int], out_dir: str | Path, run_one: Callable[[int, Path], dict[str, Any] | None], *,
              is_main: bool = True, print_fn: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``run_one(seed, folder)`` for each seed not finished yet; aggregate all of them.

    ``run_one`` returns the seed's metrics (nested dicts allowed); the main process writes
    them to ``folder/result.json`` (every process of a multi-process run calls ``run_one``).
    A run that stopped early (a preemption signal) returns None: the series stops there,
    ``"stopped": True``, and the same command goes on with that seed.
    Returns ``{"seeds": {seed: flat metrics}, "mean": {...}, "std": {...}, "n": {...}}``.
    """
    out_dir = Path(out_dir)
    per_seed: dict[int, dict[str, float]] = {}
    for seed in seeds:
        folder = out_dir / f"seed_{seed}"
        done = folder / RESULT
        if done.is_file():
            per_seed[seed] = json.loads(done.read_text())
            print_fn(f"seed {seed}: finished before ({done}), not run again")
            continue
        result = run_one(seed, folder)
        if result is None:
            return {"seeds": per_seed, "stopped": True}
        metrics = flatten(result)
        if is_main:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(metrics, indent=1))
            tmp.replace(done)
        per_seed[seed] = metrics
    summary = mean_std(list(per_seed.values()))
    return {"seeds": per_seed, "mean": {k: v[0] for k, v in summary.items()},
            "std": {k: v[1] for k, v in summary.items()}, "n": {k: v[2] for k, v in summary.items()}}
