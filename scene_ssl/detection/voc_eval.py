"""VOC detection AP, as Detectron2's ``PascalVOCDetectionEvaluator`` computes it (the MoCo / BAM
VOC protocol): for each class and each IoU threshold 0.50, 0.55, ..., 0.95, detections are
taken in order of score; one whose best-overlapping ground-truth box (of its class, in its
image) overlaps more than the threshold is a true positive the first time that box is
matched and a false positive after, unless the box is *difficult*: then it counts as
neither; every other detection is a false positive. Recall is over the non-difficult boxes.
AP is the 11-point interpolated AP for VOC2007 (``voc07``), else the area under the
precision envelope. Reported: ``AP`` (the mean over thresholds of the mean over classes),
``AP50``, ``AP75``, percent; classes without a non-difficult box are left out of the means.

Boxes are float (x0, y0, x1, y1) with plain continuous IoU; VOC's 1-based inclusive pixel
boxes are loaded as Detectron2 does (:mod:`scene_ssl.data.voc`), which makes this the same
overlap as Detectron2's ``+1`` arithmetic on its written-out results.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools.coco import COCO

__all__ = ["VOC_AP_NAMES", "voc_ap", "voc_detection_ap"]

VOC_AP_NAMES = ("AP", "AP50", "AP75")
THRESHOLDS = tuple(t / 100 for t in range(50, 100, 5))


def voc_ap(recall: np.ndarray, precision: np.ndarray, voc07: bool) -> float:
    """AP of one precision / recall curve (in detection order): 11-point (VOC2007) or the area
    under the precision envelope (VOC2010 and later).

    Example:
        >>> voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]), voc07=False)
        0.8333333333333333
    """
    if voc07:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.arange(0.0, 1.1, 0.1)]))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the envelope: best precision at this recall or beyond
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) with many (M, 4)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def _class_aps(gt: COCO, results: list[dict], category: int, image_ids: set[int], voc07: bool) -> list[float] | None:
    """The class's AP at each threshold, or None when it has no non-difficult box."""
    boxes, difficult = {}, {}
    for ann in gt.loadAnns(gt.getAnnIds(catIds=[category], imgIds=sorted(image_ids))):
        x, y, w, h = ann["bbox"]
        boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
        difficult.setdefault(ann["image_id"], []).append(bool(ann.get("difficult", 0)))
    npos = sum(not d for flags in difficult.values() for d in flags)
    if npos == 0:
        return None
    dets = sorted((r for r in results if r["category_id"] == category and r["image_id"] in image_ids),
                  key=lambda r: -r["score"])
    best_iou = np.zeros(len(dets))
    best_box = np.full(len(dets), -1)  # index of the best box within its image, -1 when none
    keys = np.zeros(len(dets), dtype=np.int64)  # (image, box) of the best box, one integer
    hard = np.zeros(len(dets), dtype=bool)
    offsets = {image: i * 100_000 for i, image in enumerate(sorted(boxes))}
    for i, r in enumerate(dets):
        if r["image_id"] not in boxes:
            continue
        x, y, w, h = r["bbox"]
        overlaps = _iou(np.array([x, y, x + w, y + h]), np.array(boxes[r["image_id"]]))
        j = int(overlaps.argmax())
        best_iou[i], best_box[i] = overlaps[j], j
        keys[i], hard[i] = offsets[r["image_id"]] + j, difficult[r["image_id"]][j]
    aps = []
    for t in THRESHOLDS:
        matched = (best_box >= 0) & (best_iou > t)
        counted = ~(matched & hard)  # a match to a difficult box is neither TP nor FP
        candidates = np.where(matched & ~hard)[0]
        _, first = np.unique(keys[candidates], return_index=True)  # in score order: the first match of each box
        tp = np.zeros(len(dets))
        tp[candidates[first]] = 1.0
        tp, fp = tp[counted], 1.0 - tp[counted]
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps.append(voc_ap(recall, precision, voc07) if len(tp) else 0.0)
    return aps


def voc_detection_ap(gt: COCO, results: list[dict[str, Any]], *, voc07: bool,
                     image_ids: list[int] | None = None) -> dict[str, float]:
    """``AP``, ``AP50``, ``AP75`` (percent) and ``per_class_AP50`` of COCO-format ``results``
    (bbox xywh) on ``gt`` (annotations with ``difficult`` flags), over ``image_ids`` (default:
    every image of ``gt``)."""
    images = set(gt.getImgIds() if image_ids is None else image_ids)
    per_class = {}
    for category in sorted(gt.getCatIds()):
        aps = _class_aps(gt, results, category, images, voc07)
        if aps is not None:
            per_class[gt.cats[category]["name"]] = aps
    if not per_class:
        return {name: 0.0 for name in VOC_AP_NAMES}
    table = 100 * np.array(list(per_class.values()))  # (classes, thresholds)
    mean = table.mean(axis=0)
    return {"AP": float(mean.mean()), "AP50": float(mean[0]), "AP75": float(mean[THRESHOLDS.index(0.75)]),
            "per_class_AP50": {name: float(v) for name, v in zip(per_class, table[:, 0])}}
