"""mmseg's ``IoUMetric``: dataset-level areas per class, summed over images and processes.

For each image, pixels whose label is the ignore index count for nothing; over the rest, the
areas of intersection (prediction = label), prediction and label per class are added up over
the whole evaluation set (not averaged per image), then union = prediction + label -
intersection. aAcc = Σ intersection / Σ label; IoU and Acc per class = intersection / union
and intersection / label; mIoU and mAcc their means over the classes where they are defined
(a class neither in the labels nor predicted is left out; one predicted but absent counts 0).
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from ..data.semantic import IGNORE

__all__ = ["class_areas", "sum_over_processes", "segmentation_scores"]


def class_areas(pred: Tensor, label: Tensor, num_classes: int, ignore_index: int = IGNORE) -> Tensor:
    """(4, C) int64: the areas of intersection, union, prediction and label of each class."""
    valid = label != ignore_index
    label, pred = label[valid].long(), pred[valid].long()
    if label.numel() and int(label.max()) >= num_classes:
        raise ValueError(f"a label holds class {int(label.max())}, beyond the {num_classes} classes (ignore index {ignore_index})")
    hist = torch.bincount(label * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)
    intersect, pred_area, label_area = hist.diagonal(), hist.sum(0), hist.sum(1)
    return torch.stack([intersect, pred_area + label_area - intersect, pred_area, label_area])


def sum_over_processes(areas: Tensor) -> Tensor:
    """``areas`` summed over every process of the process group (itself without one)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        areas = areas.clone()
        dist.all_reduce(areas)
    return areas


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def segmentation_scores(areas: Tensor, class_names: list[str]) -> dict:
    """``{"mIoU", "mAcc", "aAcc", "per_class": {name: {"IoU", "Acc"}}}`` in percent from (4, C) areas."""
    intersect, union, _, label = (row.tolist() for row in areas.double().cpu())
    iou = [_ratio(i, u) for i, u in zip(intersect, union)]
    acc = [_ratio(i, n) for i, n in zip(intersect, label)]

    def nanmean(values: list[float]) -> float:
        defined = [v for v in values if not math.isnan(v)]
        return 100 * sum(defined) / len(defined) if defined else math.nan

    return {"mIoU": nanmean(iou), "mAcc": nanmean(acc), "aAcc": 100 * _ratio(sum(intersect), sum(label)),
            "per_class": {name: {"IoU": 100 * i, "Acc": 100 * a} for name, i, a in zip(class_names, iou, acc)}}
