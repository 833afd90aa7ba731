"""The fine-tuning sets from hand-made miniatures of their official layouts: split sizes, label
mapping, and a missing file named in one line."""
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from scene_ssl.data import class_names, load_dataset
from scene_ssl.data.sources import default_splits


def _jpg(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def _labels_of(ds) -> list[tuple[str, str]]:
    names = class_names(ds)
    return [(row["image"]["path"].rsplit("/", 1)[-1], names[row["labels"][0]]) for row in ds.cast_column(
        "image", __import__("datasets").Image(decode=False))]


def test_dtd(tmp_path):
    base = tmp_path / "dtd" / "dtd"
    for cls, name in [("banded", "b1.jpg"), ("banded", "b2.jpg"), ("zigzag", "z1.jpg")]:
        _jpg(base / "images" / cls / name)
    (base / "labels").mkdir()
    (base / "labels" / "train1.txt").write_text("banded/b1.jpg\nzigzag/z1.jpg\n")
    (base / "labels" / "test1.txt").write_text("banded/b2.jpg\n")
    (base / "labels" / "train2.txt").write_text("zigzag/z1.jpg\n")
    spec = f"torchvision:DTD:{tmp_path}"
    assert default_splits(spec) == ("train", "test")
    assert _labels_of(load_dataset(spec, "train")) == [("b1.jpg", "banded"), ("z1.jpg", "zigzag")]
    assert len(load_dataset(spec, "test")) == 1 and len(load_dataset(f"{spec}?partition=2", "train")) == 1


def test_oxford_pets_labels_come_from_the_list(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    for name in ("Abyssinian_1", "great_pyrenees_7", "Abyssinian_3"):
        _jpg(base / "images" / f"{name}.jpg")
    (base / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\ngreat_pyrenees_7 2 2 1\n")
    (base / "annotations" / "test.txt").write_text("Abyssinian_3 1 1 1\n")
    spec = f"torchvision:OxfordIIITPet:{tmp_path}"
    assert default_splits(spec) == ("trainval", "test")
    assert _labels_of(load_dataset(spec, "trainval")) == [("Abyssinian_1.jpg", "Abyssinian"),
                                                          ("great_pyrenees_7.jpg", "Great Pyrenees")]
    assert len(load_dataset(spec, "test")) == 1


def test_fgvc_aircraft_at_variant_level(tmp_path):
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    for i in ("0001", "0002", "0003"):
        _jpg(data / "images" / f"{i}.jpg")
    (data / "variants.txt").write_text("707-320\nA300B4\n")
    (data / "images_variant_train.txt").write_text("0001 A300B4\n0002 707-320\n")
    (data / "images_variant_test.txt").write_text("0003 A300B4\n")
    spec = f"torchvision:FGVCAircraft:{tmp_path}"
    assert _labels_of(load_dataset(spec, "train")) == [("0001.jpg", "A300B4"), ("0002.jpg", "707-320")]
    assert class_names(load_dataset(spec, "test")) == ["707-320", "A300B4"]


def test_flowers102_reads_the_official_mat_files(tmp_path, monkeypatch):
    import torchvision.datasets.flowers102 as flowers

    monkeypatch.setattr(flowers, "check_integrity", lambda *a, **k: True)  # ours are not the official bytes
    base = tmp_path / "flowers-102"
    for i in range(1, 7):
        _jpg(base / "jpg" / f"image_{i:05d}.jpg")
    savemat(base / "imagelabels.mat", {"labels": np.array([[3, 1, 3, 2, 1, 2]])})  # 1-based, as the official file
    savemat(base / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3, 6]]), "tstid": np.array([[4, 5]])})
    spec = f"torchvision:Flowers102:{tmp_path}"
    train = load_dataset(spec, "train")
    assert [r["labels"] for r in train] == [[2], [0]] and len(load_dataset(spec, "val")) == 2
    assert [r["labels"] for r in load_dataset(spec, "test")] == [[1], [0]]


def test_stanford_cars_reads_the_devkit(tmp_path):
    base = tmp_path / "stanford_cars"
    _jpg(base / "cars_train" / "00001.jpg")
    _jpg(base / "cars_train" / "00002.jpg")
    _jpg(base / "cars_test" / "00001.jpg")
    _jpg(base / "cars_test" / "00002.jpg")
    (base / "devkit").mkdir()
    annos = lambda rows: np.array(rows, dtype=[("fname", object), ("class", np.int64)])  # noqa: E731
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": annos([("00001.jpg", 2), ("00002.jpg", 1)])})
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": annos([("00001.jpg", 1), ("00002.jpg", 1)])})
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(["AM General Hummer", "Acura RL"], dtype=object)})
    spec = f"torchvision:StanfordCars:{tmp_path}"
    assert _labels_of(load_dataset(spec, "train")) == [("00001.jpg", "Acura RL"), ("00002.jpg", "AM General Hummer")]
    assert len(load_dataset(spec, "test")) == 2


def test_cub(tmp_path):
    root = tmp_path / "CUB_200_2011"
    for i, path in enumerate(["001.Albatross/a.jpg", "001.Albatross/b.jpg", "002.Auklet/c.jpg"], 1):
        _jpg(root / "images" / path)
    (root / "images.txt").write_text("1 001.Albatross/a.jpg\n2 001.Albatross/b.jpg\n3 002.Auklet/c.jpg\n")
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    (root / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n")
    assert _labels_of(load_dataset(f"cub:{root}", "train")) == [("a.jpg", "001.Albatross"), ("c.jpg", "002.Auklet")]
    assert _labels_of(load_dataset(f"cub:{root}", "test")) == [("b.jpg", "001.Albatross")]
    (root / "train_test_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train_test_split.txt not found"):
        load_dataset(f"cub:{root}", "train")


def test_indoor67(tmp_path):
    for path in ["bar/1.jpg", "bar/2.jpg", "kitchen/3.jpg"]:
        _jpg(tmp_path / "Images" / path)
    (tmp_path / "TrainImages.txt").write_text("bar/1.jpg\nkitchen/3.jpg\n")
    (tmp_path / "TestImages.txt").write_text("bar/2.jpg\n")
    assert default_splits(f"indoor67:{tmp_path}") == ("train", "test")
    assert _labels_of(load_dataset(f"indoor67:{tmp_path}", "train")) == [("1.jpg", "bar"), ("3.jpg", "kitchen")]
    assert len(load_dataset(f"indoor67:{tmp_path}", "test")) == 1


def test_a_missing_torchvision_set_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="DTD is not complete under"):
        load_dataset(f"torchvision:DTD:{tmp_path}", "train")
    with pytest.raises(ValueError, match="unknown set 'Food101'"):
        load_dataset(f"torchvision:Food101:{tmp_path}", "train")
