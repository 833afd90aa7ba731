"""The embedded default data: a deterministic generator of synthetic multi-object scenes.

Built to behave like COCO where it matters to scene SSL:

- **many classes, few per image**: 20 classes, each its own shape with its own texture,
  1-3 objects per image (COCO: 80 classes, 2.9 per image); a random image shares a class
  with a query about one time in five, so MLS's pseudo-labels can be told apart from chance
  (the first version had 10 classes and 1-4 objects: chance was one in two);
- **every image its own**: a scene background (four near-gray corner colours blended, a
  wave, noise) with clutter strokes and blobs, and objects at random places and sizes, in
  colour pairs from a small palette;
- **the class is in shape and texture only**: colours come from a shared palette and
  backgrounds are near-gray, so neither tells one image from another to a model that
  ignores the objects. (Random object colours were tried: instance discrimination then
  learns colour, and MoCo v2's probe gain over random init halves.) An object's texture
  has a per-class direction and a canonical pose (small wobble), so what makes two scenes
  alike is which objects they hold.

Annotations are COCO's: a box, an area and an RLE mask of each object's *visible* part
(later objects cover earlier ones; an object less than a quarter visible is left out), and
*non-contiguous* category ids like COCO's, written as a COCO-format folder (``train2017/``,
``val2017/``, ``annotations/instances_{split}2017.json``), so the default run goes through
the same pycocotools path as real COCO, detection included.
"""
from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from pycocotools import mask as mask_utils

from ._shapes import SHAPES, TEXTURES, shape_mask, texture

__all__ = ["make_scenes", "SCENE_CLASSES", "scene_category_id", "GENERATOR_VERSION"]

#: bump when the pictures or annotations change: it names the cache folder
GENERATOR_VERSION = 2

#: (shape, texture) of each class: its own shape, and one of 8 textures (with a per-class
#: direction); the class name is "<texture> <shape>"
SCENE_CLASSES = tuple((shape, TEXTURES[k % len(TEXTURES)]) for k, shape in enumerate(SHAPES))

#: object colours: a small shared palette, so that colour cannot tell one image from another
PALETTE = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (240, 200, 30), (150, 50, 190), (20, 190, 200), (245, 130, 20),
           (30, 30, 30), (235, 235, 235))


def scene_category_id(index: int) -> int:
    """COCO-style non-contiguous category id of class ``index`` (every 4th id is skipped)."""
    return index + 1 + index // 3


def _muted(rng: np.random.Generator) -> tuple[int, int, int]:
    """A near-gray colour: backgrounds and clutter say nothing about an image's objects."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.12), rng.uniform(0.3, 0.9))
    return int(r * 255), int(g * 255), int(b * 255)


def _object_colours(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two contrasting palette colours of an object (its body and its texture)."""
    c1 = PALETTE[int(rng.integers(len(PALETTE)))]
    for _ in range(30):
        c2 = PALETTE[int(rng.integers(len(PALETTE)))]
        if sum(abs(a - b) for a, b in zip(c1, c2)) > 200:
            return c1, c2
    return c1, tuple(255 - v for v in c1)


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A scene of its own: four muted corner colours blended, a soft wave, noise, and clutter
    (strokes and blobs that are no class), all near-gray."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx / max(1, w - 1))[..., None], (yy / max(1, h - 1))[..., None]
    c = [np.array(_muted(rng), np.float32) for _ in range(4)]
    img = c[0] * (1 - u) * (1 - v) + c[1] * u * (1 - v) + c[2] * (1 - u) * v + c[3] * u * v
    angle, freq = rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 2.0)
    img = img + 18 * np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) / w + rng.uniform(0, 2 * math.pi))[..., None]
    img = img + 10.0 * rng.standard_normal((h, w, 3), dtype=np.float32)
    bg = Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(bg)
    for _ in range(int(rng.integers(6, 16))):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        colour = _muted(rng)
        if rng.random() < 0.6:
            draw.line([x0, y0, x0 + rng.normal(0, w / 4), y0 + rng.normal(0, h / 4)], fill=colour, width=int(rng.integers(1, 4)))
        else:
            r = rng.uniform(2, min(w, h) / 12)
            draw.ellipse([x0 - r, y0 - r * rng.uniform(0.3, 1), x0 + r, y0 + r], fill=colour)
    return bg.filter(ImageFilter.GaussianBlur(0.6))


def _scene(rng: np.random.Generator, size: tuple[int, int], num_classes: int, max_objects: int):
    """An image and its objects ``(class, bbox xywh, area, RLE)``, each object's visible part."""
    w, h = size
    img = _background(rng, size)
    drawn = []
    n = int(rng.integers(1, max_objects + 1))
    for cls in rng.choice(num_classes, size=n, replace=n > num_classes):
        shape, kind = SCENE_CLASSES[int(cls)]
        r = rng.uniform(0.16, 0.28) * min(w, h)
        cx, cy = rng.uniform(r * 0.8, w - r * 0.8), rng.uniform(r * 0.8, h - r * 0.8)
        mask = shape_mask(shape, size, cx, cy, r, rng.uniform(-0.25, 0.25))  # canonical pose, small wobble
        c1, c2 = _object_colours(rng)
        period, tex_rot = rng.uniform(0.3, 0.45) * r, (int(cls) * 0.61) % math.pi + rng.uniform(-0.15, 0.15)
        bbox = mask.getbbox()
        if bbox is None:
            continue
        x0, y0, x1, y1 = bbox
        img.paste(texture(kind, (x1 - x0, y1 - y0), c1, c2, period=period, rot=tex_rot), (x0, y0), mask.crop(bbox))
        drawn.append((int(cls), np.asarray(mask) > 0))
    objects, covered = [], np.zeros((h, w), bool)
    for cls, full in reversed(drawn):  # the last drawn is on top
        visible = full & ~covered
        covered |= full
        if visible.sum() >= max(12, full.sum() / 4):
            ys, xs = np.nonzero(visible)
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            objects.append((cls, [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())],
                            float(visible.sum()), {"size": rle["size"], "counts": rle["counts"].decode("ascii")}))
    return img, objects[::-1]


def make_scenes(
    out_dir: str | os.PathLike,
    *,
    num_classes: int = 20,
    num_train: int = 4000,
    num_val: int = 1000,
    image_size: tuple[int, int] = (80, 60),
    max_objects: int = 3,
    seed: int = 0,
    quality: int = 92,
) -> Path:
    """Write the synthetic scene set to ``out_dir`` as a COCO-format folder and return its path.

    Deterministic for a given set of arguments. Written to a temporary folder first and
    renamed into place, so an interrupted run never leaves a half-written set behind; an
    existing complete set is returned as it is.

    Args:
        num_classes: K <= 20 object classes (shape + texture).
        num_train / num_val: images per split.
        image_size: (width, height); non-square and larger than the training crops.
        max_objects: objects per image are drawn uniformly from 1..max_objects.

    Example:
        >>> import tempfile, json
        >>> root = make_scenes(tempfile.mkdtemp(), num_classes=3, num_train=4, num_val=2, image_size=(48, 32))
        >>> ann = json.load(open(root / "annotations" / "instances_val2017.json"))
        >>> len(ann["images"]), [c["id"] for c in ann["categories"]], sorted(ann["annotations"][0])
        (2, [1, 2, 3], ['area', 'bbox', 'category_id', 'id', 'image_id', 'iscrowd', 'segmentation'])
    """
    if not 1 <= num_classes <= len(SCENE_CLASSES):
        raise ValueError(f"num_classes must be in [1, {len(SCENE_CLASSES)}], got {num_classes}")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
    w, h = image_size
    if w < 16 or h < 16:
        raise ValueError(f"image_size must be at least 16x16, got {image_size}")
    out = Path(out_dir)
    if (out / ".complete").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        categories = [
            {"id": scene_category_id(i), "name": f"{SCENE_CLASSES[i][1]} {SCENE_CLASSES[i][0]}", "supercategory": "shape"}
            for i in range(num_classes)
        ]
        ann_id = 1
        (tmp / "annotations").mkdir()
        for split, count, split_seed in (("train", num_train, seed), ("val", num_val, seed + 10_000)):
            folder = tmp / f"{split}2017"
            folder.mkdir()
            rng = np.random.default_rng(split_seed)
            images, annotations = [], []
            for i in range(count):
                img, objects = _scene(rng, (w, h), num_classes, max_objects)
                image_id = i + 1 + (0 if split == "train" else num_train)
                name = f"{image_id:012d}.jpg"
                img.save(folder / name, quality=quality)
                images.append({"id": image_id, "file_name": name, "width": w, "height": h})
                for cls, bbox, area, rle in objects:
                    annotations.append({"id": ann_id, "image_id": image_id, "category_id": scene_category_id(cls),
                                        "bbox": bbox, "area": area, "segmentation": rle, "iscrowd": 0})
                    ann_id += 1
            with open(tmp / "annotations" / f"instances_{split}2017.json", "w") as f:
                json.dump({"images": images, "annotations": annotations, "categories": categories,
                           "info": {"description": f"scene_ssl synthetic scenes v{GENERATOR_VERSION}", "seed": seed}}, f)
        (tmp / ".complete").write_text("ok\n")
        if out.exists():  # an incomplete leftover from an interrupted run
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
