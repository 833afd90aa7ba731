"""voc: data on a VOC folder the test writes: XML parsing, years and splits, labels with
difficult-only classes ignored, boxes in Detectron2's convention, errors that name the file."""
import numpy as np
import pytest
from PIL import Image

from scene_ssl.data import load_dataset, parse_spec
from scene_ssl.data.voc import VOC_CLASSES, parse_voc_xml, voc_ground_truth


def _xml(name: str, objects: list[tuple[str, tuple[int, int, int, int], int, int]], size=(40, 30)) -> str:
    parts = "".join(f"<object><name>{c}</name><pose>Left</pose><truncated>{t}</truncated><difficult>{d}</difficult>"
                    f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                    for c, b, d, t in objects)
    return (f"<annotation><folder>VOC</folder><filename>{name}.jpg</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{parts}</annotation>")


def write_voc(root, year: str, images: dict[str, list], splits: dict[str, list[str]]):
    folder = root / f"VOC{year}"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (name, objects) in enumerate(images.items()):
        (folder / "Annotations" / f"{name}.xml").write_text(_xml(name, objects))
        Image.fromarray(np.full((30, 40, 3), 20 * i, np.uint8)).save(folder / "JPEGImages" / f"{name}.jpg")
    for split, names in splits.items():
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return folder


@pytest.fixture
def voc(tmp_path):
    write_voc(tmp_path, "2007", {
        "000001": [("dog", (5, 6, 20, 25), 0, 1), ("person", (1, 1, 10, 10), 0, 0)],  # two objects, one truncated
        "000002": [("cat", (2, 3, 30, 28), 1, 0), ("dog", (4, 4, 9, 9), 0, 0)],  # the cat is difficult only
        "000003": [("car", (10, 10, 35, 25), 0, 0), ("car", (1, 1, 8, 8), 1, 0)],  # a car positive and a difficult one
    }, {"trainval": ["000001", "000002"], "test": ["000003"]})
    write_voc(tmp_path, "2012", {"2012_000001": [("bus", (3, 3, 30, 20), 0, 0)]}, {"trainval": ["2012_000001"]})
    return tmp_path


def test_xml_fields_are_read_as_written(voc):
    ann = parse_voc_xml(voc / "VOC2007" / "Annotations" / "000001.xml")
    assert (ann["filename"], ann["width"], ann["height"]) == ("000001.jpg", 40, 30)
    assert ann["objects"] == [{"name": "dog", "bbox": (5, 6, 20, 25), "difficult": False, "truncated": True},
                              {"name": "person", "bbox": (1, 1, 10, 10), "difficult": False, "truncated": False}]


def test_years_and_splits(voc):
    both = load_dataset(f"voc:{voc}", "trainval")
    assert len(both) == 3  # VOC07 trainval + VOC12 trainval: the 07+12 setting
    assert len(load_dataset(f"voc:{voc}?years=2007", "trainval")) == 2
    assert len(load_dataset(f"voc:{voc}", "test")) == 1  # only 2007 has a test split
    assert len(load_dataset(f"voc:{voc / 'VOC2007'}", "test")) == 1  # one year's folder itself
    assert parse_spec(f"voc:{voc}")[0].splits == ("trainval", "test")


def test_labels_ignore_classes_present_only_as_difficult(voc):
    data = load_dataset(f"voc:{voc}?years=2007", "trainval")
    names = list(VOC_CLASSES)
    assert data.features["labels"].feature.names == names
    row = data[1]  # 000002: a difficult cat, a dog
    assert row["labels"] == [names.index("dog")]
    assert row["multi_hot"][names.index("cat")] == 0.0 and row["ignore"][names.index("cat")] == 1.0
    assert row["ignore"][names.index("dog")] == 0.0
    test = load_dataset(f"voc:{voc}?years=2007", "test")[0]  # a positive car beside a difficult one: positive
    assert test["multi_hot"][names.index("car")] == 1.0 and test["ignore"][names.index("car")] == 0.0


def test_boxes_follow_detectron2_and_keep_their_difficult_flag(voc):
    truth = voc_ground_truth(f"{voc}?years=2007", "trainval")
    anns = truth.dataset["annotations"]
    assert len(anns) == 4 and [a["difficult"] for a in anns] == [0, 0, 1, 0]
    assert anns[0]["bbox"] == [4.0, 5.0, 16.0, 20.0]  # (5, 6, 20, 25) -> x0 - 1, y0 - 1, w = 20 - 5 + 1, h
    assert truth.metric == "voc" and truth.voc07
    assert not voc_ground_truth(f"{voc}", "trainval").voc07  # with VOC2012 in it: the area AP


def test_missing_files_and_splits_are_one_line_errors(voc, tmp_path):
    (voc / "VOC2007" / "Annotations" / "000002.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"VOC annotation file not found: .*000002\.xml"):
        load_dataset(f"voc:{voc}?years=2007", "trainval")
    with pytest.raises(ValueError, match="has no split 'train'"):
        load_dataset(f"voc:{voc}", "train")
    with pytest.raises(FileNotFoundError, match="no VOC2010 folder"):
        load_dataset(f"voc:{voc}?years=2010", "test")
    (voc / "VOC2007" / "Annotations" / "000003.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match=r"unreadable VOC annotation file .*000003\.xml"):
        load_dataset(f"voc:{voc}?years=2007", "test")
    with pytest.raises(FileNotFoundError, match="VOC folder not found"):
        parse_spec(f"voc:{tmp_path / 'nope'}")


def test_other_classes_come_from_the_annotations(tmp_path, capsys):
    write_voc(tmp_path, "2007", {"a": [("widget", (1, 1, 9, 9), 0, 0)], "b": [("gadget", (2, 2, 8, 8), 0, 0)]},
              {"trainval": ["a", "b"]})
    data = load_dataset(f"voc:{tmp_path}", "trainval")
    assert data.features["labels"].feature.names == ["gadget", "widget"]
    assert "beyond VOC's 20" in capsys.readouterr().err


def test_an_object_without_a_box_keeps_its_label_and_detection_drops_it(tmp_path):
    import warnings

    from scene_ssl.detection import load_detection_set

    folder = write_voc(tmp_path, "2007", {"000001": [("dog", (5, 6, 20, 25), 0, 0)]}, {"trainval": ["000001"]})
    xml = folder / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text().replace("</annotation>", "<object><name>cat</name><difficult>0</difficult></object>"
                                                              "</annotation>"))
    assert parse_voc_xml(xml)["objects"][1]["bbox"] is None  # main 8d5e37d: 'NoneType' object has no attribute 'findtext'
    ds = load_dataset(f"voc:{tmp_path}", "trainval")
    assert ds[0]["labels"] == sorted([VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        boxes = load_detection_set(f"voc:{tmp_path}", "trainval")
    assert len(boxes.coco.anns) == 1
    assert any("1 annotation(s) without a box inside their image, dropped" in str(w.message) for w in seen)
