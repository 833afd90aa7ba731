"""``hf:`` datasets: the ``detection-datasets/coco`` parquet schema, or a single-label column."""
from __future__ import annotations

import datasets

from .decode import decode_image
from .schema import GroundTruth, dataset_from_columns, features_for, fingerprint_of, multi_hot

__all__ = ["load_hf", "hub_ground_truth", "BBOX_FORMATS"]

#: how an ``objects.bbox`` column writes a box: corners (detection-datasets) or corner + size (COCO)
BBOX_FORMATS = ("xyxy", "xywh")


def _category_feature(features: datasets.Features):
    objects = features.get("objects")
    if objects is None:
        return None
    inner = getattr(objects, "feature", objects)  # Sequence({...}) or {"category": List(ClassLabel)}
    category = inner.get("category") if isinstance(inner, dict) else None
    return getattr(category, "feature", category)


def load_hf(repo: str, split: str, *, drop_unlabeled: bool = False) -> datasets.Dataset:
    """``datasets.load_dataset(repo, split=split)`` mapped to our columns.

    Understands ``objects.category`` (the ``detection-datasets/coco`` schema; class names
    from its ``ClassLabel``), a single-label ``label`` column, or data already in our schema.
    ``repo`` may be a Hub id or a local folder of parquet / image files.
    """
    try:
        ds = datasets.load_dataset(repo, split=split)
    except ValueError as e:
        if "split" in str(e).lower():
            raise ValueError(f"hf:{repo}: {e}") from e
        raise
    if "image" not in ds.column_names:
        raise ValueError(f"hf:{repo} has no 'image' column (columns: {ds.column_names})")
    if {"labels", "multi_hot"} <= set(ds.column_names):
        return ds
    if "objects" in ds.column_names:
        category = _category_feature(ds.features)
        names = list(getattr(category, "names", None) or [])
        if not names:
            raise ValueError(f"hf:{repo}: objects.category is not a ClassLabel, so the class names are unknown")

        def convert(objects, idx):
            cats = objects["category"] if isinstance(objects, dict) else [o["category"] for o in objects]
            labels = sorted(set(int(c) for c in cats))
            return {"labels": labels, "multi_hot": multi_hot(labels, len(names))}

        source = "objects"
    elif "label" in ds.column_names and isinstance(ds.features["label"], datasets.ClassLabel):
        names = list(ds.features["label"].names)

        def convert(label, idx):
            return {"labels": [int(label)], "multi_hot": multi_hot([int(label)], len(names))}

        source = "label"
    else:
        raise ValueError(f"hf:{repo}: no 'objects.category' or ClassLabel 'label' column (columns: {ds.column_names})")

    ids = ds["image_id"] if "image_id" in ds.column_names else list(range(len(ds)))
    # only the label column goes through map: images are never decoded here
    mapped = ds.map(convert, input_columns=[source], with_indices=True, remove_columns=[source],
                    features=None, desc="labels")
    out = dataset_from_columns(
        {"image": mapped.cast_column("image", datasets.Image(decode=False))["image"], "image_id": [int(i) for i in ids],
         "labels": mapped["labels"], "multi_hot": mapped["multi_hot"]},
        datasets.Features({**features_for(names), "image": datasets.Image(decode=False)}),
        fingerprint=fingerprint_of("hf-v1", ds._fingerprint, source),
    ).cast_column("image", datasets.Image())
    if drop_unlabeled:
        out = out.filter(lambda labels: len(labels) > 0, input_columns=["labels"])
    return out


def hub_ground_truth(repo: str, split: str, bbox_format: str = "xyxy") -> GroundTruth:
    """The boxes of an HF dataset with an ``objects`` column (``bbox`` in ``bbox_format`` and a
    ClassLabel ``category``: the detection-datasets schema) as COCO-format ground truth."""
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}")
    ds = datasets.load_dataset(repo, split=split)
    if "objects" not in ds.column_names or "image" not in ds.column_names:
        raise ValueError(f"hf:{repo} has no 'objects' / 'image' columns (columns: {ds.column_names}): no boxes to detect")
    names = list(getattr(_category_feature(ds.features), "names", None) or [])
    if not names:
        raise ValueError(f"hf:{repo}: objects.category is not a ClassLabel, so the class names are unknown")
    ds = ds.cast_column("image", datasets.Image(decode=False))
    images, annotations, sources = [], [], {}
    for row_index, row in enumerate(ds):
        image_id = int(row.get("image_id", row_index))
        width, height = row.get("width"), row.get("height")
        if width is None or height is None:
            width, height = decode_image(row["image"]).size
        images.append({"id": image_id, "width": int(width), "height": int(height)})
        sources[image_id] = row["image"]
        objects = row["objects"]
        for bbox, cat in zip(objects["bbox"], objects["category"]):
            x0, y0, a, b = (float(v) for v in bbox)
            w, h = (a - x0, b - y0) if bbox_format == "xyxy" else (a, b)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cat) + 1,
                                "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    return GroundTruth({"images": images, "annotations": annotations, "categories": categories}, sources, f"hf:{repo}")
