"""Segmentation data: each source's label maps, and mmseg's training pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from scene_ssl.data.cityscapes import CITYSCAPES_CLASSES
from scene_ssl.segmentation import load_segmentation_set
from scene_ssl.segmentation.data import Pipeline, SegmentationDataset, crop_box, rescale_size

# cityscapesScripts' labels.py, written out again: (labelId, trainId) of all 34 ids, 255 = ignored
OFFICIAL = [(0, 255), (1, 255), (2, 255), (3, 255), (4, 255), (5, 255), (6, 255), (7, 0), (8, 1), (9, 255), (10, 255),
            (11, 2), (12, 3), (13, 4), (14, 255), (15, 255), (16, 255), (17, 5), (18, 255), (19, 6), (20, 7), (21, 8),
            (22, 9), (23, 10), (24, 11), (25, 12), (26, 13), (27, 14), (28, 15), (29, 255), (30, 255), (31, 16),
            (32, 17), (33, 18)]


def _cityscapes(root, label_ids, train_ids=None, split="val", city="aachen", name="aachen_000000_000019"):
    (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    h, w = label_ids.shape
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png")
    Image.fromarray(label_ids).save(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png")
    if train_ids is not None:
        Image.fromarray(train_ids).save(root / "gtFine" / split / city / f"{name}_gtFine_labelTrainIds.png")


def test_cityscapes_label_ids_become_the_19_train_ids(tmp_path):
    label_ids = np.array([[i for i, _ in OFFICIAL] + [34, 0]] * 3, np.uint8)  # every id, an unknown one too
    _cityscapes(tmp_path, label_ids)
    data = load_segmentation_set(f"cityscapes:{tmp_path}", "val")
    assert data.class_names == list(CITYSCAPES_CLASSES) and len(data) == 1
    want = np.array([[t for _, t in OFFICIAL] + [255, 255]] * 3, np.uint8)
    np.testing.assert_array_equal(data.labels(0), want)


def test_cityscapes_train_id_files_are_taken_as_they_are_when_present(tmp_path):
    label_ids = np.full((4, 6), 7, np.uint8)
    train_ids = np.arange(24, dtype=np.uint8).reshape(4, 6) % 19
    _cityscapes(tmp_path, label_ids, train_ids)
    np.testing.assert_array_equal(load_segmentation_set(f"cityscapes:{tmp_path}", "val").labels(0), train_ids)


def test_a_missing_cityscapes_folder_or_label_is_one_line_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no gtFine/ folder"):
        (tmp_path / "leftImg8bit").mkdir()
        load_segmentation_set(f"cityscapes:{tmp_path}", "val")
    _cityscapes(tmp_path, np.zeros((4, 6), np.uint8))
    (tmp_path / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match="aachen_000000_000019_gtFine_labelIds.png not found"):
        load_segmentation_set(f"cityscapes:{tmp_path}", "val")


def test_ade20k_reduces_the_zero_label(tmp_path):
    for sub in ("images/validation", "annotations/validation"):
        (tmp_path / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(tmp_path / "images/validation/ADE_val_1.jpg")
    Image.fromarray(np.array([[0, 1, 2, 150], [150, 0, 3, 1]], np.uint8)).save(tmp_path / "annotations/validation/ADE_val_1.png")
    data = load_segmentation_set(f"ade20k:{tmp_path}", "val")
    assert data.num_classes == 150 and data.class_names[0] == "wall"
    np.testing.assert_array_equal(data.labels(0), [[255, 0, 1, 149], [149, 255, 2, 0]])


def test_voc_segmentation_adds_the_aug_labels_to_train(tmp_path):
    year = tmp_path / "VOC2012"
    for sub in ("Annotations", "ImageSets/Main", "ImageSets/Segmentation", "JPEGImages", "SegmentationClass",
                "SegmentationClassAug"):
        (year / sub).mkdir(parents=True)
    (year / "ImageSets/Segmentation/train.txt").write_text("a\n")
    (year / "ImageSets/Segmentation/aug.txt").write_text("b\nc\n")
    (year / "ImageSets/Segmentation/val.txt").write_text("d\n")
    palette = Image.new("P", (3, 2))
    for name, folder in (("a", "SegmentationClass"), ("b", "SegmentationClassAug"), ("c", "SegmentationClassAug"),
                         ("d", "SegmentationClass")):
        Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(year / "JPEGImages" / f"{name}.jpg")
        label = Image.fromarray(np.array([[0, 15, 255], [20, 1, 0]], np.uint8), "L").convert("P")
        label.putpalette(palette.getpalette() or [0] * 768)
        label.save(year / folder / f"{name}.png")
    train = load_segmentation_set(f"voc:{tmp_path}", "train")
    assert len(train) == 3 and train.num_classes == 21 and train.class_names[15] == "person"
    np.testing.assert_array_equal(train.labels(1), [[0, 15, 255], [20, 1, 0]])  # the palette's indices, not colours
    assert len(load_segmentation_set(f"voc:{tmp_path}", "val")) == 1


def test_scene_masks_become_one_semantic_map(seg_scenes):
    data = load_segmentation_set(f"coco:{seg_scenes}", "val")
    coco = COCO(str(seg_scenes / "annotations" / "instances_val2017.json"))
    assert data.class_names[0] == "background" and data.num_classes == 5
    image_id = sorted(coco.imgs)[0]
    want = np.zeros((48, 64), np.uint8)
    for ann in coco.imgToAnns[image_id]:
        want[coco.annToMask(ann) > 0] = sorted(coco.getCatIds()).index(ann["category_id"]) + 1
    np.testing.assert_array_equal(data.labels(0), want)
    assert (want > 0).any() and (want == 0).any()


def test_a_folder_has_no_label_maps():
    with pytest.raises(ValueError, match="has no label maps"):
        load_segmentation_set("folder:/tmp", "train")


def test_the_crop_avoids_one_class_filling_it():
    label = np.zeros((100, 100), np.uint8)
    label[:, 90:] = 1  # 10% of the image is class 1
    rng = np.random.default_rng(0)
    boxes = [crop_box(label, (20, 20), 0.75, rng) for _ in range(50)]
    mixed = sum(len(np.unique(label[t:b, l:r])) > 1 for t, l, b, r in boxes)
    plain = sum(len(np.unique(label[t:b, l:r])) > 1 for t, l, b, r in (crop_box(label, (20, 20), 1.0, rng) for _ in range(50)))
    assert mixed > 2 * plain  # re-drawn crops find the rare class far more often


def test_training_items_are_crops_padded_with_the_ignore_label(seg_scenes):
    data = load_segmentation_set(f"coco:{seg_scenes}", "train")
    pipeline = Pipeline(scale=(64, 48), ratio_range=(0.5, 0.5), crop_size=(40, 40), test_scale=(128, 96))
    item = SegmentationDataset(data, pipeline, train=True)[0]
    assert item["image"].shape == (3, 40, 40) and item["label"].shape == (40, 40)
    # the image is resized to 32 x 24: the crop is padded below and to the right with 255
    assert (item["label"][24:] == 255).all() and (item["label"][:, 32:] == 255).all() and (item["label"][:24, :32] != 255).all()
    assert (item["image"][:, 24:] == 0).all()
    again = SegmentationDataset(data, pipeline, train=True)[0]
    assert torch.equal(item["image"], again["image"])  # seeded by (seed, epoch, index)
    evaluation = SegmentationDataset(data, pipeline, train=False)[0]
    assert evaluation["image"].shape == (3, 96, 128) and evaluation["label"].shape == (48, 64)
    assert rescale_size(64, 48, (128, 96)) == (128, 96)


class ScriptedRng:
    """The draws PhotoMetricDistortion makes, given in order."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def integers(self, *args):
        return self.draws.pop(0)

    def uniform(self, *args):
        return self.draws.pop(0)


def test_photometric_distortion_is_mmsegs_steps_in_mmsegs_order():
    from scene_ssl.segmentation.data import photometric_distortion

    pixels = np.array([[[250, 100, 10], [30, 200, 60]]], np.uint8)
    # brightness +40 (clipped at 255), contrast last (coin 0 first) with x1.5, no saturation / hue
    out = photometric_distortion(pixels, ScriptedRng(1, 40.0, 0, 0, 0, 1, 1.5))
    bright = np.clip(pixels.astype(np.float32) + 40, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, np.clip(bright.astype(np.float32) * 1.5, 0, 255).astype(np.uint8))
    # contrast first (coin 1, x0.5), then nothing: the brightness step did not happen
    np.testing.assert_array_equal(photometric_distortion(pixels, ScriptedRng(0, 1, 1, 0.5, 0, 0)),
                                  (pixels.astype(np.float32) * 0.5).astype(np.uint8))
    # a hue shift of 60 of OpenCV's 180 steps (120 degrees) turns red to green
    red = np.array([[[255, 0, 0]]], np.uint8)
    green = photometric_distortion(red, ScriptedRng(0, 1, 0, 0, 1, 60, 0))[0, 0]
    assert green[1] > 240 and green[0] < 15 and green[2] < 15
    # saturation x0 makes grey
    grey = photometric_distortion(np.array([[[200, 50, 50]]], np.uint8), ScriptedRng(0, 1, 0, 1, 0.0, 0, 0))[0, 0]
    assert grey.max() - grey.min() <= 1


def test_the_crops_change_with_the_epoch(seg_scenes):
    data = load_segmentation_set(f"coco:{seg_scenes}", "train")
    dataset = SegmentationDataset(data, Pipeline(scale=(64, 48), crop_size=(24, 24)), train=True)
    first = dataset[3]["image"]
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[3]["image"])
    dataset.set_epoch(0)
    assert torch.equal(first, dataset[3]["image"])


def test_resizing_is_opencvs_bilinear_and_nearest():
    from scene_ssl.segmentation.data import resize_image, resize_label

    image = np.zeros((4, 4, 3), np.uint8)
    image[:, 2:] = 200
    half = resize_image(image, (2, 2))  # bilinear on pixel centres, no antialiasing: samples between columns 0-1 and 2-3
    np.testing.assert_array_equal(half[..., 0], [[0, 200], [0, 200]])
    label = np.arange(16, dtype=np.uint8).reshape(4, 4)
    np.testing.assert_array_equal(resize_label(label, (2, 2)), [[0, 2], [8, 10]])  # source pixel floor(x * 2)
    np.testing.assert_array_equal(resize_label(label, (8, 8))[::2, ::2], label)
