"""COCO-format annotations, read and checked once, by one rule for every use.

Pretraining labels, the probes and detection all read their boxes and classes through
:func:`checked`, so a broken annotation is met at load, once, and never in the middle of a
training run:

- a file that is not valid JSON (a truncated download) is an error naming it;
- an image id listed twice is an error naming it (its annotations cannot be told apart);
- an annotation naming an image or a category the file does not list is dropped;
- a box is clipped to its image (when the image's size is listed); a box with no area left,
  or none at all, is dropped with its annotation.

Each kind of drop is counted in one warning naming the file.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

__all__ = ["read_json", "checked", "coco_index"]


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A COCO-format annotation file as a dict.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid JSON, or not a COCO-format mapping (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        dataset = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON (truncated?): {e}") from None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("images", []), list):
        raise ValueError(f"{path} is not a COCO-format annotation file (no list of 'images')")
    return dataset


def _clipped(bbox: Any, image: dict) -> list[float] | None:
    """The xywh box clipped to the image; None when it has no area left or is not a box."""
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    x0, y0, x1, y1 = x, y, x + w, y + h
    if image.get("width") and image.get("height"):
        x0, x1 = max(0.0, x0), min(float(image["width"]), x1)
        y0, y1 = max(0.0, y0), min(float(image["height"]), y1)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def checked(dataset: dict[str, Any], name: str) -> dict[str, Any]:
    """``dataset`` (COCO-format) by the module's rule: a copy without the annotations it
    drops, its boxes clipped; ``name`` (the file or spec) is named in the error and warnings.

    Example:
        >>> data = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 3, "name": "cat"}],
        ...         "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [8, 8, 5, 5]},
        ...                         {"id": 2, "image_id": 1, "category_id": 3, "bbox": [4, 4, -2, 3]}]}
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     kept = checked(data, "ann.json")
        >>> [a["bbox"] for a in kept["annotations"]], str(seen[0].message)
        ([[8.0, 8.0, 2.0, 2.0]], 'ann.json: 1 annotation(s) without a box inside their image, dropped')
    """
    images = dataset.get("images", [])
    ids = Counter(int(image["id"]) for image in images)
    twice = sorted(i for i, n in ids.items() if n > 1)
    if twice:
        raise ValueError(f"{name}: image id {twice[0]} is listed {ids[twice[0]]} times"
                         + (f" ({len(twice)} ids are listed more than once)" if len(twice) > 1 else ""))
    by_id = {int(image["id"]): image for image in images}
    categories = {int(c["id"]) for c in dataset.get("categories", [])}
    kept, dropped, unknown = [], Counter(), set()
    for ann in dataset.get("annotations", []):
        if int(ann.get("image_id", -1)) not in by_id:
            dropped["naming an image id the file does not list"] += 1
            continue
        if ann.get("category_id") not in categories:
            unknown.add(ann.get("category_id"))
            dropped["naming a category id not in its 'categories'"] += 1
            continue
        box = _clipped(ann.get("bbox"), by_id[int(ann["image_id"])])
        if box is None:
            dropped["without a box inside their image"] += 1
            continue
        if box != ann["bbox"]:
            ann = {**ann, "bbox": box}
        kept.append(ann)
    for why, n in dropped.items():
        example = f" ({', '.join(map(str, sorted(unknown, key=str)[:3]))})" if "category" in why else ""
        warnings.warn(f"{name}: {n} annotation(s) {why}{example}, dropped", stacklevel=2)
    return {**dataset, "annotations": kept}


def coco_index(dataset: dict[str, Any]) -> COCO:
    """A pycocotools ``COCO`` index over an in-memory ``{images, annotations, categories}`` dict."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco
