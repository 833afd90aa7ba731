import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from scene_ssl.data import class_names, load_dataset


def write_coco(root, split="val"):
    """A tiny COCO folder: non-contiguous category ids, an image without annotations,
    a crowd annotation, two annotations of the same class on one image."""
    (root / f"{split}2017").mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    images = []
    for i, image_id in enumerate([42, 7, 1000, 3]):
        name = f"{image_id:012d}.jpg"
        Image.fromarray(np.full((20 + i, 30, 3), 40 * i, np.uint8)).save(root / f"{split}2017" / name)
        images.append({"id": image_id, "file_name": name, "width": 30, "height": 20 + i})
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 90, "name": "toothbrush"}]
    anns = [
        {"id": 1, "image_id": 42, "category_id": 90, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 2, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 1},
        {"id": 4, "image_id": 3, "category_id": 3, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 5, "image_id": 3, "category_id": 3, "bbox": [2, 2, 5, 5], "area": 25, "iscrowd": 0},
    ]
    path = root / "annotations" / f"instances_{split}2017.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_multi_hot_rows_match_pycocotools(tmp_path):
    ann = write_coco(tmp_path / "coco")
    ds = load_dataset(f"coco:{tmp_path / 'coco'}", "val")
    coco = COCO(str(ann))
    cat_ids = sorted(coco.getCatIds())
    assert class_names(ds) == [coco.cats[c]["name"] for c in cat_ids] == ["person", "car", "toothbrush"]
    assert ds["image_id"] == sorted(coco.getImgIds())
    for row in ds:
        expected = np.zeros(len(cat_ids), np.float32)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[row["image_id"]], iscrowd=None)):
            expected[cat_ids.index(a["category_id"])] = 1.0
        assert row["multi_hot"] == expected.tolist()
        assert row["labels"] == np.flatnonzero(expected).tolist()
        assert row["image"].size == (coco.imgs[row["image_id"]]["width"], coco.imgs[row["image_id"]]["height"])


def test_unannotated_images_kept_for_ssl_dropped_for_probes(tmp_path):
    write_coco(tmp_path / "coco")
    assert 1000 in load_dataset(f"coco:{tmp_path / 'coco'}", "val")["image_id"]
    assert 1000 not in load_dataset(f"coco:{tmp_path / 'coco'}", "val", drop_unlabeled=True)["image_id"]


def test_built_dataset_is_cached(tmp_path, monkeypatch):
    write_coco(tmp_path / "coco")
    first = load_dataset(f"coco:{tmp_path / 'coco'}", "val")

    class NoParse:
        def __init__(self, *a, **k):
            raise AssertionError("the annotation file was parsed again")

    import pycocotools.coco

    monkeypatch.setattr(pycocotools.coco, "COCO", NoParse)
    again = load_dataset(f"coco:{tmp_path / 'coco'}", "val")
    assert again["multi_hot"] == first["multi_hot"]


def test_errors_name_what_is_wrong(tmp_path):
    write_coco(tmp_path / "coco")
    with pytest.raises(FileNotFoundError, match="instances_train2017.json"):
        load_dataset(f"coco:{tmp_path / 'coco'}", "train")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_dataset(f"coco:{tmp_path / 'coco'}", "test")
    with pytest.raises(ValueError, match="unknown dataset spec 'cocoa:x'"):
        load_dataset("cocoa:x", "val")
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("coco:", "val")
