"""Semantic-segmentation data: images and per-pixel class maps, one :class:`SegmentationSet` per split.

Every source gives a list of images, a way to read each image's label map as train ids
(``uint8``, 0..C-1, :data:`IGNORE` where a pixel counts for nothing), and the class names.
Label files go through a 256-entry lookup table (:class:`PngLabels`): Cityscapes' labelIds
become its 19 train ids, ADE20K's ``reduce_zero_label`` shifts 1..150 to 0..149 and ignores
0, VOC's PNGs are taken as they are (255: the object borders). The embedded scenes paint
their instance masks into a map (:class:`InstanceLabels`, also ``coco:``'s things): 0
background, k the k-th class.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .schema import GroundTruth

__all__ = ["IGNORE", "SegmentationSet", "PngLabels", "InstanceLabels", "identity_table", "reduce_zero_table",
           "semantic_from_instances", "missing_file"]

#: the label of a pixel that is neither trained on nor scored (mmseg's ignore_index)
IGNORE = 255


class LabelReader(Protocol):
    def __call__(self, index: int) -> np.ndarray: ...


@dataclasses.dataclass
class SegmentationSet:
    """Images of one split and their label maps: ``labels(i)`` is image i's (H, W) uint8 map of
    train ids (:data:`IGNORE` for none); train id k is ``class_names[k]``."""

    images: list[Any]  # paths (or HF {"path", "bytes"})
    labels: LabelReader
    class_names: list[str]
    spec: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.images)


def identity_table() -> np.ndarray:
    """The lookup table that keeps every value (label files that hold train ids)."""
    return np.arange(256, dtype=np.uint8)


def reduce_zero_table() -> np.ndarray:
    """mmseg's ``reduce_zero_label``: 0 (other) is ignored, k -> k - 1 (ADE20K's 1..150 -> 0..149).

    Example:
        >>> reduce_zero_table()[[0, 1, 150, 255]].tolist()
        [255, 0, 149, 255]
    """
    table = np.arange(256, dtype=np.int64) - 1
    table[0] = IGNORE
    table[255] = IGNORE
    return table.astype(np.uint8)


def missing_file(path: Path, what: str, spec: str) -> FileNotFoundError:
    return FileNotFoundError(f"{spec}: {what} {path} not found")


@dataclasses.dataclass
class PngLabels:
    """Label maps read from image files (8-bit grey or palette PNGs: the values, not the
    colours) through a 256-entry lookup table. Picklable, for data-loader workers."""

    paths: list[str]
    table: np.ndarray

    def __call__(self, index: int) -> np.ndarray:
        with Image.open(self.paths[index]) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"label file {self.paths[index]} is {image.mode}, not a map of class values (L or P)")
            values = np.asarray(image)
        if values.max(initial=0) > 255:
            raise ValueError(f"label file {self.paths[index]} holds values above 255")
        return self.table[values.astype(np.uint8)]


@dataclasses.dataclass
class InstanceLabels:
    """Label maps painted from COCO-format instance masks (RLE or polygons): 0 background,
    each object's train id over its mask, later objects on top. Crowd regions are ignored."""

    sizes: list[tuple[int, int]]  # (height, width) of each image
    objects: list[list[tuple[int, Any]]]  # each image's (train id, COCO segmentation)

    def __call__(self, index: int) -> np.ndarray:
        height, width = self.sizes[index]
        out = np.zeros((height, width), np.uint8)
        for train_id, segmentation in self.objects[index]:
            out[_mask(segmentation, height, width)] = train_id
        return out


def _mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        counts = segmentation["counts"]
        rle = {"size": segmentation["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def semantic_from_instances(truth: GroundTruth) -> SegmentationSet:
    """A semantic map per image of COCO-format instances with masks (the embedded scenes,
    ``coco:``): class ``background`` + the categories in id order; crowd regions ignored."""
    dataset = truth.dataset
    cat_ids = sorted(int(c["id"]) for c in dataset["categories"])
    names = {int(c["id"]): c["name"] for c in dataset["categories"]}
    train_id = {c: i + 1 for i, c in enumerate(cat_ids)}
    images = sorted(dataset["images"], key=lambda i: int(i["id"]))
    objects: dict[int, list] = {int(i["id"]): [] for i in images}
    for a in dataset["annotations"]:
        if not a.get("segmentation"):
            raise ValueError(f"{truth.spec}: annotation {a.get('id')} has no mask; semantic maps need masks")
        objects[int(a["image_id"])].append((IGNORE if a.get("iscrowd") else train_id[int(a["category_id"])],
                                            a["segmentation"]))
    labels = InstanceLabels([(int(i["height"]), int(i["width"])) for i in images], [objects[int(i["id"])] for i in images])
    return SegmentationSet([truth.sources[int(i["id"])] for i in images], labels,
                           ["background"] + [names[c] for c in cat_ids], truth.spec)
