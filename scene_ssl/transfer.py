"""What the transfer recipes (detection, segmentation) share around their training loop:
the backbones compared (the pretrained one and random init of its architecture), one run
per backbone, several seeds in one command, and the report: a table, ``metrics.json`` and
the pretrained backbone's result in its model card.

A transfer's results are nested ``{group: {metric: value}}`` (detection: ``{"bbox": {"AP":
...}, "segm": {...}}``; segmentation: ``{"sem_seg": {"mIoU": ...}}``); a row of the report
is ``{"source", "metrics", "minutes", "images_per_s"}`` (+ ``"spread"``: the std over seeds).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

from .config import config_to_dict, default_of, option
from .data.workers import DEFAULT_WORKERS, THREADS_HELP, WORKERS_HELP, check_threads
from .export import add_results, evaluation_result
from .loading import export_folder, load_backbone
from .models import MLSConfig
from .processes import is_main_process
from .seeds import run_seeds
from .trackers import REPORT_TO_HELP, check_report_to
from .train.iterations import FinetuneResult

__all__ = ["TransferConfig", "compared_sources", "run_transfer", "metrics_table", "write_metrics_json", "add_card_result",
           "seed_rows"]


@dataclasses.dataclass
class TransferConfig:
    """The fields every transfer recipe (detection, segmentation) has: which backbone against
    random init, how the run is launched, logged, seeded, checkpointed and resumed."""

    model: str = option(default_of(MLSConfig, "output_dir"), "pretrained backbone: training output | export folder | "
                                                              "local-dir:... | hf-hub:... | random:<timm name>")
    compare_random: bool = option(True, "also fine-tune random:<same architecture> with the same settings")
    mixed_precision: str | None = option(None, "no | bf16 | fp16; none: the accelerate launch config")
    report_to: str = option("auto", REPORT_TO_HELP)
    num_workers: int = option(DEFAULT_WORKERS, WORKERS_HELP)
    threads: int | None = option(None, THREADS_HELP)
    seed: int = option(0, "seed of the heads, the data order and the augmentation")
    seeds: tuple[int, ...] | None = option(None, "run once per seed (e.g. 0,1,2; a finished seed is not rerun) and "
                                                 "report mean ± std (n)")
    output_dir: str = option("outputs/transfer", "where checkpoints, logs and metrics.json go")
    log_every: int = option(20, "iterations between log lines")
    save_every: int = option(5000, "iterations between checkpoints (0: only at the end)")
    keep_checkpoints: int = option(1, "checkpoints kept per model")
    resume: str | None = option(None, "auto (resume if a checkpoint exists, else start) | latest | a checkpoint folder")

    def check(self) -> None:
        check_threads(self.threads)
        check_report_to(self.report_to)
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")

def compared_sources(model: str, compare_random: bool) -> dict[str, str]:
    """name -> source: the pretrained backbone and, for comparison, random init of its architecture."""
    sources = {"pretrained": model}
    if compare_random and not model.startswith("random:"):
        arch = load_backbone(model).model.pretrained_cfg.get("architecture")
        sources["random init"] = f"random:{arch}"
    return sources


def _run_backbones(cfg, finetune: Callable[[Any, str, Path], FinetuneResult]) -> dict | None:
    """``finetune(cfg, source, out_dir)`` for each backbone of :func:`compared_sources`; None when a signal stopped one."""
    rows = {}
    for name, source in compared_sources(cfg.model, cfg.compare_random).items():
        start = time.perf_counter()
        run = finetune(cfg, source, Path(cfg.output_dir) / name.replace(" ", "_"))
        if not run.finished:
            return None
        rows[name] = {"source": source, "metrics": run.metrics, "minutes": (time.perf_counter() - start) / 60,
                      "images_per_s": run.images_per_s}
    return rows


def run_transfer(cfg, finetune: Callable[[Any, str, Path], FinetuneResult],
                 report: Callable[[Any, dict, dict | None], Path]) -> dict:
    """Fine-tune and evaluate every compared backbone, once or once per ``cfg.seeds`` (each seed
    in ``OUTPUT_DIR/seed_<s>``, a finished one not rerun), and ``report(cfg, rows, seeds)`` on the
    main process (rows of the mean over seeds, with ``seeds`` the per-seed summary).
    ``{"stopped_by": ...}`` when a signal stopped a run (``--resume auto`` goes on)."""
    if not cfg.seeds:
        rows = _run_backbones(cfg, finetune)
        if rows is None:
            return {"stopped_by": "a signal"}
        if is_main_process():
            report(cfg, rows, None)
        return rows

    def one(seed: int, folder: Path) -> dict | None:
        rows = _run_backbones(dataclasses.replace(cfg, seed=seed, seeds=None, output_dir=str(folder)), finetune)
        return None if rows is None else {name: {**row["metrics"], "minutes": row["minutes"],
                                                 "images_per_s": row["images_per_s"]} for name, row in rows.items()}

    summary = run_seeds(list(cfg.seeds), cfg.output_dir, one, is_main=is_main_process())
    if summary.get("stopped"):
        return {"stopped_by": "a signal"}
    if is_main_process():
        print(f"mean over {len(summary['seeds'])} seeds {list(summary['seeds'])} (std in metrics.json):")
        report(cfg, seed_rows(summary), summary)
    return summary


def _nested(flat: dict[str, float], backbone: str) -> dict[str, dict[str, float]]:
    """``{"pretrained/bbox/AP": x}`` -> ``{"bbox": {"AP": x}}`` for one backbone."""
    out: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        name, _, rest = key.partition("/")
        group, _, metric = rest.partition("/")
        if name == backbone and metric and "/" not in metric:  # a group's own numbers, not its per-class tables
            out.setdefault(group, {})[metric] = value
    return out


def seed_rows(summary: dict) -> dict[str, dict]:
    """Report rows of the mean over seeds (``summary`` from :func:`scene_ssl.seeds.run_seeds`), the std as ``spread``."""
    backbones = sorted({key.split("/", 1)[0] for key in summary["mean"]}, key=lambda b: b != "pretrained")
    order = [k for seed in summary["seeds"].values() for k in seed]  # the runs' own column order (mIoU first ...)
    mean = {k: summary["mean"][k] for k in dict.fromkeys(order) if k in summary["mean"]}
    return {b: {"metrics": _nested(mean, b), "spread": _nested(summary["std"], b), "minutes": mean[f"{b}/minutes"],
                "images_per_s": mean[f"{b}/images_per_s"]} for b in backbones}


def _numbers(metrics: dict) -> list[str]:
    """The summary numbers of one group (not a per-class table)."""
    return [k for k, v in metrics.items() if isinstance(v, (int, float))]


def metrics_table(rows: dict[str, dict], suffix: Callable[[str], str] = lambda group: "") -> str:
    """``| backbone | <metric><suffix(group)> ... | wall min | train images/s |`` of report rows (± std with a spread)."""
    first = next(iter(rows.values()))["metrics"]
    groups = sorted(first)
    head = [f"{name}{suffix(g)}" for g in groups for name in _numbers(first[g])]
    lines = ["| backbone | " + " | ".join(head) + " | wall min | train images/s |", "|---|" + "---:|" * (len(head) + 2)]
    for name, r in rows.items():
        cells = [_cell(r, g, k) for g in groups for k in _numbers(first[g])]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['minutes']:.1f} | {r['images_per_s']:.1f} |")
    return "\n".join(lines)


def _cell(row: dict, group: str, key: str) -> str:
    value = row["metrics"].get(group, {}).get(key)
    if value is None or value != value:  # not measured (e.g. a class absent from every seed's evaluation), NaN
        return "n/a"
    spread = row.get("spread", {}).get(group, {}).get(key)
    return f"{value:.1f}" + (f" ± {spread:.1f}" if spread is not None else "")


def _json_safe(value):
    """NaN (a class neither labelled nor predicted) as null: strict JSON for jq and browsers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def write_metrics_json(cfg, rows: dict, seeds: dict | None) -> Path:
    """``OUTPUT_DIR/metrics.json``: the config, the rows and, for several seeds, each seed's numbers."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(_json_safe({"config": config_to_dict(cfg), "results": rows, **({"seeds": seeds["seeds"]} if seeds else {})}),
                               indent=1, allow_nan=False))
    return path


def add_card_result(cfg, rows: dict, seeds: dict | None, *, task: str, name: str, dataset: str, split: str,
                    flat: Callable[[dict], dict[str, float]], recipe: str, baseline: str | None,
                    print_fn: Callable = print) -> None:
    """When ``cfg.model`` is a local export, add the pretrained row's numbers (``flat(metrics)``) to
    its model card as a ``task`` result, ``baseline`` (the random-init number) in its source."""
    folder = export_folder(cfg.model)
    if folder is None or "pretrained" not in rows:
        return
    extra = {"spread": flat(rows["pretrained"].get("spread", {})), "runs": len(seeds["seeds"])} if seeds else {}
    source = recipe + (f" (random init: {baseline})" if baseline else "")
    add_results(folder, [evaluation_result(task, name, dataset, flat(rows["pretrained"]["metrics"]), split=split,
                                           source=source, **extra)])
    print_fn(f"added the result to the model card {folder / 'README.md'}")

