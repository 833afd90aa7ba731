"""The columns every labeled source yields, and small helpers around them."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import datasets
from datasets.table import InMemoryTable

__all__ = ["features_for", "class_names", "num_classes", "cache_root", "dataset_from_columns", "fingerprint_of",
           "GroundTruth"]


@dataclasses.dataclass
class GroundTruth:
    """What every source with boxes yields for detection: COCO-format ``{"images",
    "annotations", "categories"}`` (boxes xywh in pixels, masks where there are any) and how
    to read each image (image id -> path, or HF ``{"path", "bytes"}``). ``spec`` names the data;
    ``metric`` the evaluation its papers use: ``coco`` (COCOeval) or ``voc`` (VOC AP, the
    11-point one when ``voc07``; annotations may carry ``difficult``)."""

    dataset: dict[str, Any]
    sources: dict[int, Any]
    spec: str
    metric: str = "coco"
    voc07: bool = False


def features_for(names: list[str]) -> datasets.Features:
    """``image`` (HF Image), ``image_id``, ``labels`` (class indices), ``multi_hot`` (floats)."""
    return datasets.Features(
        {
            "image": datasets.Image(),
            "image_id": datasets.Value("int64"),
            "labels": datasets.Sequence(datasets.ClassLabel(names=list(names))),
            "multi_hot": datasets.Sequence(datasets.Value("float32")),
        }
    )


def class_names(ds: datasets.Dataset) -> list[str]:
    """Class names carried by the ``labels`` column (empty for unlabeled data)."""
    feature = ds.features["labels"]
    inner = getattr(feature, "feature", None)
    if inner is None and isinstance(feature, list):
        inner = feature[0]
    return list(getattr(inner, "names", []) or [])


def num_classes(ds: datasets.Dataset) -> int:
    return len(class_names(ds))


def cache_root() -> Path:
    """Where built datasets and the generated scenes are cached (``$SCENE_SSL_CACHE``)."""
    root = os.environ.get("SCENE_SSL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "scene_ssl"
    )
    return Path(root)


def multi_hot(labels: list[int], n: int) -> list[float]:
    row = [0.0] * n
    for c in labels:
        row[c] = 1.0
    return row


def fingerprint_of(*parts) -> str:
    """A short stable hash of ``parts`` (their ``str``), for explicit dataset fingerprints."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def dataset_from_columns(columns: dict[str, list], features: datasets.Features, fingerprint: str) -> datasets.Dataset:
    """``Dataset.from_dict`` with an explicit fingerprint.

    ``from_dict`` hashes the whole new table (with dill) to fingerprint it: slow for big
    sets, and on some Python / dill / pyarrow combinations it fails outright (seen with
    Python 3.12, dill 0.4.1, pyarrow 26). We know what identifies our data, so we say it.
    """
    table = InMemoryTable.from_pydict(features.encode_batch(columns), schema=features.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features), fingerprint=fingerprint)
