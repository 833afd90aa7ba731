"""The segmentation recipe's report: mIoU / mAcc / aAcc per backbone, metrics.json, and the model card."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..card import dataset_name
from ..transfer import add_card_result, metrics_table, write_metrics_json
from .config import SegmentationConfig

__all__ = ["segmentation_table", "write_report"]


def segmentation_table(rows: dict[str, dict]) -> str:
    """``| backbone | mIoU | mAcc | aAcc | wall | images/s |`` from report rows."""
    return metrics_table(rows)


def _model_name(cfg: SegmentationConfig) -> str:
    head = "PSPNet" if cfg.head == "psp" else "FCN" + (f"-d{cfg.head_dilation}" if cfg.head_dilation > 1 else "")
    return f"{head} (output stride {cfg.output_stride}, {cfg.norm}, {cfg.schedule}, {cfg.crop_size[0]}x{cfg.crop_size[1]} crops, {cfg.test_mode} test)"


def write_report(cfg: SegmentationConfig, rows: dict[str, dict], seeds: dict | None = None,
                 print_fn: Callable = print) -> Path:
    """Print the table, write ``metrics.json`` (per-class IoU and Acc in it) and, when
    ``cfg.model`` is a local export, add the pretrained backbone's numbers to its model card
    (task image-segmentation); with ``seeds``, the rows are means and the card says ± std (n)."""
    print_fn(f"\nsegmentation transfer ({_model_name(cfg)}) on {cfg.data} {cfg.val_split}:\n" + segmentation_table(rows))
    path = write_metrics_json(cfg, rows, seeds)
    print_fn(f"wrote {path}")
    baseline = rows.get("random init", {}).get("metrics", {}).get("sem_seg", {}).get("mIoU")
    add_card_result(cfg, rows, seeds, task="image-segmentation", name=_model_name(cfg), dataset=dataset_name(cfg.data),
                    split=cfg.val_split, flat=lambda nested: {k: v for m in nested.values() for k, v in m.items()
                                                              if isinstance(v, (int, float))},
                    recipe="transfer_segmentation.py", baseline=None if baseline is None else f"mIoU {baseline:.1f}",
                    print_fn=print_fn)
    return path
