import numpy as np
import pytest
import torch

from scene_ssl.detection import DetectionDataset, load_detection_set
from scene_ssl.detection.config import DetectionConfig
from scene_ssl.schedule import schedule_iterations, step_lr_factor as lr_factor

from ..data.test_hub import write_detection_parquet


def test_scenes_have_boxes_and_masks_that_agree(det_scenes):
    data = load_detection_set(f"coco:{det_scenes}", "train")
    assert data.has_masks and data.num_classes == 4 and data.class_names[0] == "stripes circle"
    item = DetectionDataset(data, train=False, masks=True)[0]
    pixels, target = item
    assert pixels.shape[0] == 3 and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
    for box, mask in zip(target["boxes"], target["masks"]):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert torch.equal(box, torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32))


def test_training_flips_boxes_with_the_pixels(det_scenes):
    data = load_detection_set(f"coco:{det_scenes}", "train")
    plain = DetectionDataset(data, train=False, masks=True)
    train = DetectionDataset(data, train=True, masks=True, seed=0)
    flipped = 0
    for i in range(len(train)):
        (a, ta), (b, tb) = plain[plain.image_ids.index(train.image_ids[i])], train[i]
        if torch.equal(a, b):
            continue
        flipped += 1
        w = a.shape[-1]
        assert torch.equal(b, a.flip(-1)) and torch.equal(tb["masks"], ta["masks"].flip(-1))
        assert torch.allclose(tb["boxes"][:, [0, 2]], w - ta["boxes"][:, [2, 0]])
    assert 0 < flipped < len(train)


def test_flips_change_with_the_epoch_through_persistent_workers(det_scenes):
    from torch.utils.data import DataLoader

    from scene_ssl.data import init_worker
    from scene_ssl.detection import collate_detection

    dataset = DetectionDataset(load_detection_set(f"coco:{det_scenes}", "train"), train=True, seed=0)
    loader = DataLoader(dataset, batch_size=4, num_workers=1, persistent_workers=True, collate_fn=collate_detection,
                        worker_init_fn=init_worker)

    def boxes(epoch):
        dataset.set_epoch(epoch)
        return [t["boxes"] for _, targets in loader for t in targets]

    first, second, again = boxes(0), boxes(1), boxes(0)
    assert any(not torch.equal(a, b) for a, b in zip(first, second)), "the same flips in epochs 0 and 1"
    assert all(torch.equal(a, b) for a, b in zip(first, again)), "an epoch's flips are not reproducible"


def test_hub_detection_schema_becomes_coco_ground_truth(tmp_path):
    cats = write_detection_parquet(tmp_path / "repo")
    data = load_detection_set(f"hf:{tmp_path / 'repo'}", "train", bbox_format="xyxy")
    assert data.class_names == ["person", "bicycle", "car", "dog"] and not data.has_masks
    assert len(data.coco.anns) == sum(len(c) for c in cats)
    ann = data.annotations(10)[0]
    assert ann["bbox"] == [0.0, 0.0, 1.0, 1.0]  # xyxy [0, 0, 1, 1] -> xywh
    with pytest.raises(ValueError, match="task segm needs masks"):
        DetectionDataset(data, train=True, masks=True)


def test_data_without_boxes_is_refused_before_training(tmp_path):
    (tmp_path / "imgs").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    with pytest.raises(ValueError, match="has no boxes"):
        load_detection_set(f"folder:{tmp_path / 'imgs'}", "train")
    with pytest.raises(FileNotFoundError, match="COCO folder not found"):
        load_detection_set(f"coco:{tmp_path / 'nope'}", "train")


@pytest.mark.parametrize("kwargs,match", [({"task": "keypoints"}, "task"), ({"norm": "gn"}, "norm"),
                                          ({"schedule": "lots"}, "schedule"), ({"train_sizes": ()}, "train_sizes")])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DetectionConfig(**kwargs).check()


def test_schedule_follows_the_linear_scaling_rule_and_steps_at_two_thirds_and_eight_ninths():
    assert schedule_iterations("1x", 16) == 90_000 and schedule_iterations("1x", 8) == 180_000
    assert schedule_iterations("3x", 16) == 270_000 and schedule_iterations("1000", 64) == 1000
    total = 90
    factors = [lr_factor(i, total, 0) for i in range(total)]
    assert factors[59] == 1.0 and factors[60] == pytest.approx(0.1) and factors[80] == pytest.approx(0.01)
    assert lr_factor(0, total, 10) == pytest.approx(0.001) and lr_factor(5, total, 10) == pytest.approx(0.001 + 0.999 / 2)
