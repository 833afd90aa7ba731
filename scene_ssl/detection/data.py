"""Detection data: COCO-format ground truth (boxes, and masks where the data has them) and its images.

Every source becomes a pycocotools ``COCO`` index plus a way to read each image, so that
training and COCOeval see the same annotations: ``coco:`` folders and the embedded
``scenes`` as they are on disk, ``hf:`` datasets with an ``objects`` column
(``bbox`` + ``category``, the detection-datasets schema) converted in memory.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset

from ..data import decode_image
from ..data.views import first_readable
from ..data.hub import BBOX_FORMATS
from ..data.schema import GroundTruth
from ..data.sampler import SharedEpoch, seeded_generator
from ..data.sources import parse_spec, spec_usage
from ..data.annotations import checked, coco_index

__all__ = ["DetectionSet", "load_detection_set", "DetectionDataset", "collate_detection", "BBOX_FORMATS"]


@dataclasses.dataclass
class DetectionSet:
    """Ground truth and images of one split. Label ``k + 1`` of a model is ``category_ids[k]``.
    ``metric``: how its papers evaluate it, ``coco`` (COCOeval) or ``voc`` (VOC AP; 11-point
    when ``voc07``)."""

    coco: COCO
    category_ids: list[int]
    class_names: list[str]
    image_ids: list[int]
    sources: dict[int, Any]  # image id -> path, or HF {"path", "bytes"}
    has_masks: bool
    metric: str = "coco"
    voc07: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def annotations(self, image_id: int, *, include_crowd: bool = False) -> list[dict]:
        anns = self.coco.imgToAnns.get(image_id, [])
        return [a for a in anns if include_crowd or not a.get("iscrowd", 0)]


def _finish(coco: COCO, truth: GroundTruth) -> DetectionSet:
    if not coco.anns:
        raise ValueError(f"{truth.spec} has no boxes: detection needs annotated objects")
    cat_ids = sorted(coco.getCatIds())
    has_masks = all("segmentation" in a and a["segmentation"] for a in coco.anns.values())
    return DetectionSet(coco, cat_ids, [coco.cats[c]["name"] for c in cat_ids], sorted(coco.imgs), truth.sources,
                        has_masks, truth.metric, truth.voc07)


def load_detection_set(spec: str, split: str, *, bbox_format: str = "xyxy") -> DetectionSet:
    """Ground truth and images of ``split`` of any data spec whose source has boxes (see
    :data:`scene_ssl.data.sources.SOURCES`: ``scenes``, ``coco:/path``, ``hf:<repo or folder>``
    with ``objects.bbox`` in ``bbox_format``: xyxy for detection-datasets, xywh for COCO-style
    boxes). Sources without boxes (``folder:``) are refused.

    Example:
        >>> load_detection_set("folder:/tmp", "train")
        Traceback (most recent call last):
        ...
        ValueError: folder:/tmp has no boxes: detection needs scenes, coco:<path>, hf:<repo id or folder>[?streaming=1]...
    """
    source, arg = parse_spec(spec)
    if source.detection is None:
        raise ValueError(f"{spec} has no boxes: detection needs {spec_usage(can='detection')}")
    truth = source.detection(arg, split, bbox_format=bbox_format)
    return _finish(coco_index(checked(truth.dataset, truth.spec)), truth)


class DetectionDataset(SharedEpoch, Dataset):
    """Items ``(image (3, H, W) float in [0, 1], target)`` for torchvision's R-CNNs: ``boxes``
    (N, 4) xyxy, ``labels`` (N,) in 1..C, ``masks`` (N, H, W) uint8 when asked, ``image_id``,
    and ``skipped``: the unreadable files this item stands in for.

    ``train=True`` drops images without a (non-crowd) box, as Detectron2 does, and flips half
    the images horizontally, seeded by (seed, epoch, index) like the SSL views. An unreadable
    image is replaced by the next readable one while training (the batch keeps its size, as
    the SSL views do); in evaluation (``train=False``) its item is None: it is left out of the
    evaluation, its boxes with it.
    """

    def __init__(self, data: DetectionSet, *, train: bool, masks: bool = False, seed: int = 0) -> None:
        if masks and not data.has_masks:
            raise ValueError("task segm needs masks, and this data has boxes only")
        self.data, self.train, self.masks, self.seed = data, train, masks, seed
        SharedEpoch.__init__(self)  # the flips' epoch, seen by persistent workers
        self.image_ids = [i for i in data.image_ids if data.annotations(i)] if train else list(data.image_ids)
        self.label_of = {c: k + 1 for k, c in enumerate(data.category_ids)}

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]] | None:
        j, image, skipped = first_readable(index, len(self), lambda j: decode_image(self.data.sources[self.image_ids[j]]),
                                           replace=self.train)
        if j is None:
            return None
        pixels, target = self._item(j, image)
        return pixels, {**target, "skipped": skipped}

    def _item(self, index: int, image) -> tuple[Tensor, dict[str, Tensor]]:
        image_id = self.image_ids[index]
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)  # (3, H, W)
        anns = self.data.annotations(image_id)
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                              for a in anns], dtype=torch.float32).reshape(-1, 4)
        target = {"boxes": boxes, "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64),
                  "image_id": torch.tensor(image_id)}
        if self.masks:
            target["masks"] = torch.from_numpy(np.stack([self.data.coco.annToMask(a) for a in anns]) if anns
                                               else np.zeros((0, *pixels.shape[1:]), np.uint8))
        if self.train and torch.rand((), generator=seeded_generator(self.seed, self.epoch, index)) < 0.5:
            pixels, target = _hflip(pixels, target)
        return pixels, target


def _hflip(pixels: Tensor, target: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    width = pixels.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    flipped = {**target, "boxes": boxes}
    if "masks" in target:
        flipped["masks"] = target["masks"].flip(-1)
    return pixels.flip(-1), flipped


def collate_detection(items: list[tuple[Tensor, dict]]) -> tuple[list[Tensor], list[dict]]:
    """Lists of images and targets: the R-CNNs batch images of different sizes themselves."""
    return [i for i, _ in items], [t for _, t in items]
