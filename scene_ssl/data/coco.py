"""COCO-format folders through pycocotools, cached as a ``datasets.Dataset`` with an explicit fingerprint."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets

from .schema import GroundTruth, cache_root, dataset_from_columns, features_for, fingerprint_of, multi_hot

__all__ = ["load_coco", "coco_ground_truth", "COCO_SPLITS"]

COCO_SPLITS = ("train", "val")
_SCHEMA_VERSION = "coco-v1"


def _paths(root: Path, split: str) -> tuple[Path, Path]:
    if split not in COCO_SPLITS:
        raise ValueError(f"unknown split {split!r} for a COCO folder; expected one of {COCO_SPLITS}")
    ann = root / "annotations" / f"instances_{split}2017.json"
    images = root / f"{split}2017"
    if not ann.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {ann}")
    if not images.is_dir():
        raise FileNotFoundError(f"COCO image folder not found: {images}")
    return ann, images


def coco_ground_truth(root: str | os.PathLike, split: str) -> GroundTruth:
    """The instances of ``split`` (``annotations/instances_{split}2017.json``) and where each image is."""
    root = Path(root).expanduser()
    ann, folder = _paths(root, split)
    dataset = json.loads(ann.read_text())
    sources = {int(info["id"]): str(folder / info["file_name"]) for info in dataset.get("images", [])}
    return GroundTruth(dataset, sources, f"coco:{root}")


def load_coco(root: str | os.PathLike, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """Load ``root/{split}2017`` with ``root/annotations/instances_{split}2017.json``.

    COCO's non-contiguous category ids become contiguous class indices in id order (80 for
    COCO). Images without annotations are kept (they are fine for SSL) unless
    ``drop_unlabeled`` (what probes want). The built dataset is cached under
    :func:`~scene_ssl.data.schema.cache_root`, keyed by the annotation file's path, size and
    modification time, so the ~20 s pycocotools parse of train2017 happens once, and
    ``datasets`` never has to hash a captured COCO object.
    """
    root = Path(root).expanduser().resolve()
    ann, images = _paths(root, split)
    st = ann.stat()
    key = fingerprint_of(_SCHEMA_VERSION, ann, st.st_size, st.st_mtime_ns, images, drop_unlabeled)
    cached = cache_root() / "datasets" / f"{root.name}-{split}-{key}"
    if (cached / "dataset_info.json").exists():
        return datasets.load_from_disk(str(cached))

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO(str(ann))
    cat_ids = sorted(coco.getCatIds())
    names = [coco.cats[c]["name"] for c in cat_ids]
    index = {c: i for i, c in enumerate(cat_ids)}
    columns: dict[str, list] = {"image": [], "image_id": [], "labels": [], "multi_hot": []}
    for image_id in sorted(coco.getImgIds()):
        labels = sorted({index[a["category_id"]] for a in coco.imgToAnns.get(image_id, [])})
        if drop_unlabeled and not labels:
            continue
        columns["image"].append(str(images / coco.imgs[image_id]["file_name"]))
        columns["image_id"].append(int(image_id))
        columns["labels"].append(labels)
        columns["multi_hot"].append(multi_hot(labels, len(names)))
    ds = dataset_from_columns(columns, features_for(names), fingerprint=key)

    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=cached.name + ".tmp-", dir=cached.parent))
    was_disabled = datasets.utils.logging.is_progress_bar_enabled() is False
    datasets.utils.logging.disable_progress_bar()  # a cache write is not worth a progress bar
    try:  # write then rename: a concurrent or interrupted build never leaves half a cache
        ds.save_to_disk(str(tmp))
        try:
            os.replace(tmp, cached)
        except OSError:  # another process won the race
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not was_disabled:
            datasets.utils.logging.enable_progress_bar()
    return datasets.load_from_disk(str(cached)) if cached.exists() else ds
