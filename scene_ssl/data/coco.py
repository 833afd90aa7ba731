"""COCO-format folders, cached as a ``datasets.Dataset`` of file names with an explicit fingerprint."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import pyarrow.compute as pc

from .annotations import checked, read_json
from .schema import GroundTruth, cache_root, dataset_from_columns, features_for, fingerprint_of, multi_hot

__all__ = ["load_coco", "coco_ground_truth", "COCO_SPLITS"]

COCO_SPLITS = ("train", "val")
_SCHEMA_VERSION = "coco-v3"  # v2: file names, not image bytes; v3: the largest object's class


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
    """The instances of ``split`` (``annotations/instances_{split}2017.json``) and where each
    image is; checked by :func:`~scene_ssl.data.annotations.checked` where they are used."""
    root = Path(root).expanduser()
    ann, folder = _paths(root, split)
    dataset = read_json(ann)
    sources = {int(info["id"]): str(folder / info["file_name"]) for info in dataset.get("images", [])}
    return GroundTruth(dataset, sources, str(ann))


def _labels(dataset: dict, drop_unlabeled: bool) -> tuple[list[str], dict[str, list]]:
    """Class names (categories in id order: COCO's 80 non-contiguous ids become 0..79) and the
    columns, the image column holding each image's file name; ``largest`` is the class of each
    image's largest object (box area; -1 without one): its single label, where one is wanted."""
    cat_ids = sorted(int(c["id"]) for c in dataset.get("categories", []))
    names = {int(c["id"]): c["name"] for c in dataset.get("categories", [])}
    index = {c: i for i, c in enumerate(cat_ids)}
    labels_of: dict[int, set[int]] = {}
    largest: dict[int, tuple[float, int]] = {}
    for a in dataset["annotations"]:
        image, label = int(a["image_id"]), index[int(a["category_id"])]
        labels_of.setdefault(image, set()).add(label)
        area = float(a["bbox"][2]) * float(a["bbox"][3])
        if area > largest.get(image, (-1.0, -1))[0]:
            largest[image] = (area, label)
    columns: dict[str, list] = {"image": [], "image_id": [], "labels": [], "multi_hot": [], "largest": []}
    for image in sorted(dataset.get("images", []), key=lambda i: int(i["id"])):
        labels = sorted(labels_of.get(int(image["id"]), ()))
        if drop_unlabeled and not labels:
            continue
        columns["image"].append(image["file_name"])
        columns["image_id"].append(int(image["id"]))
        columns["labels"].append(labels)
        columns["multi_hot"].append(multi_hot(labels, len(cat_ids)))
        columns["largest"].append(largest.get(int(image["id"]), (0.0, -1))[1])
    return [names[c] for c in cat_ids], columns


def _in_folder(ds: datasets.Dataset, folder: Path) -> datasets.Dataset:
    """The cached file names as an ``Image`` column of paths under ``folder``."""
    table = ds.data.table
    paths = pc.binary_join_element_wise(str(folder) + os.sep, table.column("image"), "")
    ds = datasets.Dataset(table.set_column(table.schema.get_field_index("image"), "image", paths), info=ds.info,
                          fingerprint=fingerprint_of(ds._fingerprint, folder))
    return ds.cast_column("image", datasets.Image())


def load_coco(root: str | os.PathLike, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """Load ``root/{split}2017`` with ``root/annotations/instances_{split}2017.json``.

    COCO's non-contiguous category ids become contiguous class indices in id order (80 for
    COCO). Images without annotations are kept (they are fine for SSL) unless
    ``drop_unlabeled`` (what probes want). The annotations are checked
    (:func:`~scene_ssl.data.annotations.checked`). The columns are cached under
    :func:`~scene_ssl.data.schema.cache_root` with each image's file name, never its bytes
    (a few dozen bytes per image), keyed by the annotation file's size, modification time and
    first bytes, not its path: the cache stays valid when the folder moves (``mv``, ``cp -a``).
    A missing or unreadable image is skipped, warned about and counted where it is decoded.
    """
    root = Path(root).expanduser().resolve()
    ann, images = _paths(root, split)
    st = ann.stat()
    with open(ann, "rb") as f:
        head = hashlib.sha1(f.read(1 << 20)).hexdigest()
    key = fingerprint_of(_SCHEMA_VERSION, st.st_size, st.st_mtime_ns, head, split, drop_unlabeled)
    cached = cache_root() / "datasets" / f"coco-{split}-{key}"  # not named by the folder: it may move
    if (cached / "dataset_info.json").exists():
        return _in_folder(datasets.load_from_disk(str(cached)), images)

    names, columns = _labels(checked(read_json(ann), str(ann)), drop_unlabeled)
    features = datasets.Features({**features_for(names), "image": datasets.Value("string"),
                                  "largest": datasets.Value("int64")})
    ds = dataset_from_columns(columns, features, fingerprint=key)
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
    return _in_folder(datasets.load_from_disk(str(cached)) if cached.exists() else ds, images)
