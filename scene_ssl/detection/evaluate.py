"""COCO-style evaluation of detections with pycocotools' COCOeval, over any number of processes."""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["AP_NAMES", "to_coco_results", "coco_ap", "gather_results"]

#: COCOeval's first six summary numbers, in percent
AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def to_coco_results(image_id: int, prediction: dict[str, torch.Tensor], category_ids: list[int],
                    mask_threshold: float = 0.5) -> list[dict[str, Any]]:
    """One image's torchvision prediction (``boxes`` xyxy, ``scores``, ``labels`` 1..C and, for
    Mask R-CNN, ``masks`` (N, 1, H, W) probabilities) as COCO result entries (bbox xywh; RLE)."""
    boxes = prediction["boxes"].detach().float().cpu()
    scores = prediction["scores"].detach().float().cpu().tolist()
    labels = prediction["labels"].detach().cpu().tolist()
    masks = prediction.get("masks")
    rles = []
    if masks is not None:
        binary = (masks[:, 0] >= mask_threshold).cpu().numpy().astype(np.uint8)  # (N, H, W)
        rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))) if len(binary) else []
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        entry = {"image_id": int(image_id), "category_id": category_ids[labels[i] - 1], "score": float(scores[i]),
                 "bbox": [x0, y0, x1 - x0, y1 - y0]}
        if masks is not None:
            entry["segmentation"] = {"size": rles[i]["size"], "counts": rles[i]["counts"].decode("ascii")}
        out.append(entry)
    return out


def coco_ap(ground_truth: COCO, results: list[dict[str, Any]], iou_type: str = "bbox",
            image_ids: list[int] | None = None) -> dict[str, float]:
    """COCOeval's AP, AP50, AP75, APs, APm, APl (percent) of ``results`` on ``ground_truth``.

    ``image_ids`` limits the evaluation to those images (default: every image of the ground
    truth). No detection at all scores 0 (COCOeval itself refuses an empty result list).
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if not results:
        return {name: 0.0 for name in AP_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        detections = ground_truth.loadRes(results)
        evaluator = COCOeval(ground_truth, detections, iou_type)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # -1 marks "no ground truth of that size": report 0 rather than a negative AP
    return {name: max(0.0, float(v)) * 100 for name, v in zip(AP_NAMES, evaluator.stats[:6])}


def gather_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every process's result entries, on every process (each image was evaluated by one)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return results
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, results)
    return [r for part in parts for r in part]
