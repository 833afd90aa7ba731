"""``ade20k:`` data: the ADE20K scene-parsing folder (``ADEChallengeData2016``) for semantic segmentation.

``ade20k:/path/ADEChallengeData2016`` holds ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png`` (values 0..150, 0 = other); the splits are
called ``train`` / ``val`` (or by their folder names). As mmseg's ``ADE20KDataset``
(``reduce_zero_label``): 0 is ignored and 1..150 become the train ids 0..149.
"""
from __future__ import annotations

from pathlib import Path

from .semantic import PngLabels, SegmentationSet, missing_file, reduce_zero_table

__all__ = ["ADE20K_CLASSES", "ade20k_segmentation", "check_ade20k"]

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet", "sidewalk",
    "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water", "painting", "sofa",
    "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill",
    "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag")
assert len(ADE20K_CLASSES) == 150

_FOLDERS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}


def check_ade20k(arg: str) -> None:
    root = Path(arg).expanduser()
    for sub in ("images", "annotations"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"ade20k:{arg}: no {sub}/ folder in {root} (expected ADEChallengeData2016)")


def ade20k_segmentation(arg: str, split: str) -> SegmentationSet:
    """The images of ``split`` (train / val) with their 150-class labels."""
    root, spec = Path(arg).expanduser(), f"ade20k:{arg}"
    check_ade20k(arg)
    if split not in _FOLDERS:
        raise ValueError(f"{spec}: split must be train or val, got {split!r}")
    folder = root / "images" / _FOLDERS[split]
    images = sorted(folder.glob("*.jpg"))
    if not images:
        raise ValueError(f"{spec}: no .jpg images in {folder}")
    labels = [root / "annotations" / _FOLDERS[split] / f"{p.stem}.png" for p in images]
    for path in labels:
        if not path.is_file():
            raise missing_file(path, "label file", spec)
    return SegmentationSet([str(p) for p in images], PngLabels([str(p) for p in labels], reduce_zero_table()),
                           list(ADE20K_CLASSES), spec)
