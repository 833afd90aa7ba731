"""The detection recipe's report: a table of COCO AP per backbone, metrics.json, and the model card."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..card import dataset_name
from ..export import add_results, evaluation_result
from ..loading import export_folder
from .config import DetectionConfig

__all__ = ["detection_table", "write_report", "write_seeds_report"]


def _names(metrics: dict) -> list[str]:
    """The AP numbers of one evaluation (COCO's six or VOC's three), not its per-class table."""
    return [k for k, v in metrics.items() if isinstance(v, (int, float))]


def detection_table(rows: dict[str, dict]) -> str:
    """``| backbone | AP_bb ... | AP_mk ... | wall | images/s |`` from ``{name: {"metrics", "minutes", "images_per_s"}}``."""
    first = next(iter(rows.values()))["metrics"]
    iou_types = sorted(first)
    head = [f"{name}{'_bb' if t == 'bbox' else '_mk'}" for t in iou_types for name in _names(first[t])]
    lines = ["| backbone | " + " | ".join(head) + " | wall min | train images/s |", "|---|" + "---:|" * (len(head) + 2)]
    for name, r in rows.items():
        cells = [f"{r['metrics'][t][k]:.1f}" + (f" ± {r['spread'][t][k]:.1f}" if "spread" in r else "")
                 for t in iou_types for k in _names(first[t])]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['minutes']:.1f} | {r['images_per_s']:.1f} |")
    return "\n".join(lines)


def _detector(cfg: DetectionConfig) -> str:
    """``Mask R-CNN R50-FPN``-style name of the detector a config trains, and its metric."""
    arch = "C4" if cfg.architecture == "c4" else f"FPN {cfg.box_head}"
    metric = "VOC AP" if cfg.data.startswith("voc:") else "COCO AP"
    return f"{'Mask' if cfg.task == 'segm' else 'Faster'} R-CNN {arch}, {metric}"


def _nested(flat: dict[str, float], backbone: str) -> dict[str, dict[str, float]]:
    """``{"pretrained/bbox/AP": x}`` -> ``{"bbox": {"AP": x}}`` for one backbone."""
    out: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        name, _, rest = key.partition("/")
        if name == backbone and "/" in rest:
            iou_type, metric = rest.split("/", 1)
            out.setdefault(iou_type, {})[metric] = value
    return out


def write_seeds_report(cfg: DetectionConfig, summary: dict, print_fn: Callable = print) -> Path:
    """:func:`write_report` of the mean over seeds (``summary`` from :func:`scene_ssl.seeds.run_seeds`),
    the card's entry with its standard deviation and n; the per-seed rows in ``metrics.json``."""
    backbones = sorted({key.split("/", 1)[0] for key in summary["mean"]}, key=lambda b: b != "pretrained")
    mean = summary["mean"]
    rows = {b: {"metrics": _nested(mean, b), "spread": _nested(summary["std"], b), "minutes": mean[f"{b}/minutes"],
                "images_per_s": mean[f"{b}/images_per_s"]} for b in backbones}
    print_fn(f"mean over {len(summary['seeds'])} seeds {list(summary['seeds'])} (std in metrics.json):")
    return write_report(cfg, rows, print_fn, seeds=summary)


def write_report(cfg: DetectionConfig, rows: dict[str, dict], print_fn: Callable = print,
                 seeds: dict | None = None) -> Path:
    """Print the table, write ``metrics.json`` and, when ``cfg.model`` is a local export, add the
    pretrained backbone's AP to its model card (task object-detection); with ``seeds`` (several
    runs), the rows are their means and the card says ± std (n)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = f"{min(cfg.train_sizes)}-{max(cfg.train_sizes)}" if len(cfg.train_sizes) > 1 else str(cfg.train_sizes[0])
    print_fn(f"\ndetection transfer ({_detector(cfg)}, norm {cfg.norm}, "
             f"schedule {cfg.schedule}, train {sizes} px / test {cfg.test_size} px) on {cfg.data} {cfg.val_split}:\n"
             + detection_table(rows))
    (out / "metrics.json").write_text(json.dumps({"config": {k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in vars(cfg).items()}, "results": rows,
                                                  **({"seeds": seeds["seeds"]} if seeds else {})}, indent=1))
    print_fn(f"wrote {out / 'metrics.json'}")
    folder = export_folder(cfg.model)
    if folder is not None and "pretrained" in rows:
        data = dataset_name(cfg.data)
        name = f"{_detector(cfg)} ({cfg.norm}, {cfg.schedule}, {cfg.test_size} px)"
        flat = lambda nested: {f"{k}{'_bb' if t == 'bbox' else '_mk'}": v for t, m in nested.items() for k, v in m.items()}  # noqa: E731
        metrics = flat(rows["pretrained"]["metrics"])
        baseline = rows.get("random init", {}).get("metrics", {}).get("bbox", {}).get("AP")
        source = "transfer_detection.py" + (f" (random init: AP_bb {baseline:.1f})" if baseline is not None else "")
        extra = {"spread": flat(rows["pretrained"]["spread"]), "runs": len(seeds["seeds"])} if seeds else {}
        add_results(folder, [evaluation_result("object-detection", name, data, metrics, split=cfg.val_split, source=source,
                                               **extra)])
        print_fn(f"added the result to the model card {folder / 'README.md'}")
    return out / "metrics.json"
