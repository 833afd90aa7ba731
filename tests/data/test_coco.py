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

    def no_parse(path):
        raise AssertionError("the annotation file was parsed again")

    import scene_ssl.data.coco

    monkeypatch.setattr(scene_ssl.data.coco, "read_json", no_parse)
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


def _cache_bytes(cache) -> int:
    return sum(p.stat().st_size for p in (cache / "datasets").rglob("*.arrow"))


def test_the_cache_holds_file_names_not_image_bytes_and_survives_a_move(tmp_path, monkeypatch):
    import shutil

    import scene_ssl.data.coco

    cache = tmp_path / "cache"
    monkeypatch.setenv("SCENE_SSL_CACHE", str(cache))
    write_coco(tmp_path / "coco")
    big = np.random.default_rng(0).integers(0, 255, (400, 600, 3), dtype=np.uint8)
    for name in (tmp_path / "coco" / "val2017").iterdir():  # photos of ~400 kB each
        Image.fromarray(big).save(name, quality=95)
    ds = load_dataset(f"coco:{tmp_path / 'coco'}", "val")
    assert _cache_bytes(cache) < 4096 + 100 * len(ds)  # a schema, then file names; main 8d5e37d: every image (> 400 kB each)
    shutil.move(tmp_path / "coco", tmp_path / "moved")
    monkeypatch.setattr(scene_ssl.data.coco, "read_json", lambda path: (_ for _ in ()).throw(AssertionError("rebuilt")))
    moved = load_dataset(f"coco:{tmp_path / 'moved'}", "val")
    assert moved["image_id"] == ds["image_id"] and moved[0]["image"].size == (600, 400)  # read from the new place


def test_a_missing_image_file_is_skipped_and_counted_not_fatal(tmp_path):
    import warnings

    from scene_ssl.data import ViewDataset
    from scene_ssl.transforms import MoCoV2Transform

    write_coco(tmp_path / "coco")
    (tmp_path / "coco" / "val2017" / f"{7:012d}.jpg").unlink()
    ds = load_dataset(f"coco:{tmp_path / 'coco'}", "val")  # main 8d5e37d: FileNotFoundError for the whole spec
    views = ViewDataset(ds, MoCoV2Transform(size=8))
    items = [views[i] for i in range(len(views))]
    assert sum(len(item["skipped"]) for item in items) == 1 and f"{7:012d}.jpg" in items[1]["skipped"][0]


def _edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_duplicate_image_id_is_one_line_naming_it(tmp_path):
    ann = write_coco(tmp_path / "coco")
    _edit(ann, lambda d: d["images"].append({**d["images"][0], "file_name": "other.jpg"}))
    with pytest.raises(ValueError, match=r"instances_val2017.json: image id 42 is listed 2 times"):
        load_dataset(f"coco:{tmp_path / 'coco'}", "val")  # main 8d5e37d: one of them silently dropped


def test_an_unknown_category_id_is_dropped_with_one_warning(tmp_path):
    ann = write_coco(tmp_path / "coco")
    _edit(ann, lambda d: d["annotations"].append({"id": 99, "image_id": 7, "category_id": 777, "bbox": [1, 1, 2, 2]}))
    with pytest.warns(UserWarning, match=r"1 annotation\(s\) naming a category id not in its 'categories' \(777\), dropped"):
        ds = load_dataset(f"coco:{tmp_path / 'coco'}", "val")  # main 8d5e37d: KeyError: 777
    assert ds[ds["image_id"].index(7)]["labels"] == [1]


def test_a_truncated_annotation_file_is_named(tmp_path):
    ann = write_coco(tmp_path / "coco")
    ann.write_text(ann.read_text()[:200])
    with pytest.raises(ValueError, match=r"instances_val2017.json is not valid JSON \(truncated\?\)"):
        load_dataset(f"coco:{tmp_path / 'coco'}", "val")
