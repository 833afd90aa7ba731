"""The detection recipe's report: a table of COCO AP per backbone, metrics.json, and the model card."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..card import dataset_name
from ..transfer import add_card_result, metrics_table, write_metrics_json
from .config import DetectionConfig

__all__ = ["detection_table", "write_report"]


def _suffix(iou_type: str) -> str:
    return "_bb" if iou_type == "bbox" else "_mk"


def detection_table(rows: dict[str, dict]) -> str:
    """``| backbone | AP_bb ... | AP_mk ... | wall | images/s |`` from ``{name: {"metrics", "minutes", "images_per_s"}}``."""
    return metrics_table(rows, _suffix)


def _detector(cfg: DetectionConfig) -> str:
    """``Mask R-CNN R50-FPN``-style name of the detector a config trains, and its metric."""
    arch = "C4" if cfg.architecture == "c4" else f"FPN {cfg.box_head}"
    metric = "VOC AP" if cfg.data.startswith("voc:") else "COCO AP"
    return f"{'Mask' if cfg.task == 'segm' else 'Faster'} R-CNN {arch}, {metric}"


def write_report(cfg: DetectionConfig, rows: dict[str, dict], seeds: dict | None = None,
                 print_fn: Callable = print) -> Path:
    """Print the table, write ``metrics.json`` and, when ``cfg.model`` is a local export, add the
    pretrained backbone's AP to its model card (task object-detection); with ``seeds`` (several
    runs), the rows are their means and the card says ± std (n)."""
    sizes = f"{min(cfg.train_sizes)}-{max(cfg.train_sizes)}" if len(cfg.train_sizes) > 1 else str(cfg.train_sizes[0])
    print_fn(f"\ndetection transfer ({_detector(cfg)}, norm {cfg.norm}, "
             f"schedule {cfg.schedule}, train {sizes} px / test {cfg.test_size} px) on {cfg.data} {cfg.val_split}:\n"
             + detection_table(rows))
    path = write_metrics_json(cfg, rows, seeds)
    print_fn(f"wrote {path}")
    baseline = rows.get("random init", {}).get("metrics", {}).get("bbox", {}).get("AP")
    add_card_result(cfg, rows, seeds, task="object-detection", dataset=dataset_name(cfg.data), split=cfg.val_split,
                    name=f"{_detector(cfg)} ({cfg.norm}, {cfg.schedule}, {cfg.test_size} px)",
                    flat=lambda nested: {f"{k}{_suffix(t)}": v for t, m in nested.items() for k, v in m.items()},
                    recipe="transfer_detection.py", baseline=None if baseline is None else f"AP_bb {baseline:.1f}", print_fn=print_fn)
    return path
