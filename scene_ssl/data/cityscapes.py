"""``cityscapes:`` data: the Cityscapes folder (``leftImg8bit/`` + ``gtFine/``) for semantic segmentation.

``cityscapes:/path`` holds ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` and
``gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png`` (written by cityscapesScripts'
``createTrainIdLabelImgs``) or, where that is absent, ``..._gtFine_labelIds.png``, mapped to
the 19 train ids with the official table (``cityscapesscripts/helpers/labels.py``); every
other id is ignored (255).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .semantic import IGNORE, PngLabels, SegmentationSet, identity_table, missing_file

__all__ = ["CITYSCAPES_CLASSES", "LABEL_TO_TRAIN_ID", "label_ids_table", "cityscapes_segmentation", "check_cityscapes"]

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")

#: labelId -> trainId of the 19 evaluated classes (every other id: ignored)
LABEL_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
                     27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def label_ids_table() -> np.ndarray:
    """The lookup table of ``*_labelIds.png`` values to train ids.

    Example:
        >>> label_ids_table()[[0, 7, 9, 26, 33, 34]].tolist()
        [255, 0, 255, 13, 18, 255]
    """
    table = np.full(256, IGNORE, np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        table[label_id] = train_id
    return table


def check_cityscapes(arg: str) -> None:
    root = Path(arg).expanduser()
    for sub in ("leftImg8bit", "gtFine"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"cityscapes:{arg}: no {sub}/ folder in {root}")


def cityscapes_segmentation(arg: str, split: str) -> SegmentationSet:
    """The images of ``split`` (train / val / test) with their fine labels as train ids."""
    root, spec = Path(arg).expanduser(), f"cityscapes:{arg}"
    check_cityscapes(arg)
    folder = root / "leftImg8bit" / split
    if not folder.is_dir():
        raise missing_file(folder, "split folder", spec)
    images = sorted(folder.glob("*/*_leftImg8bit.png"))
    if not images:
        raise ValueError(f"{spec}: no *_leftImg8bit.png images in {folder}")
    train_ids, label_ids = [], []
    for image in images:
        stem = image.name[: -len("_leftImg8bit.png")]
        base = root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_"
        train_ids.append(base.with_name(base.name + "labelTrainIds.png"))
        label_ids.append(base.with_name(base.name + "labelIds.png"))
    if all(p.is_file() for p in train_ids):
        labels = PngLabels([str(p) for p in train_ids], identity_table())
    else:
        for path in label_ids:
            if not path.is_file():
                raise missing_file(path, "label file (no labelTrainIds either)", spec)
        labels = PngLabels([str(p) for p in label_ids], label_ids_table())
    return SegmentationSet([str(p) for p in images], labels, list(CITYSCAPES_CLASSES), spec)
