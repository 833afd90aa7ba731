import numpy as np
import pytest
import torch

from scene_ssl.detection import coco_ap, load_detection_set, to_coco_results
from scene_ssl.detection.config import DetectionConfig
from scene_ssl.detection.train import evaluate_detector

from ..distributed_helpers import run_distributed


def _ground_truth_as_predictions(data, image_id, with_masks):
    anns = data.annotations(image_id)
    label = {c: k + 1 for k, c in enumerate(data.category_ids)}
    pred = {"boxes": torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                                   for a in anns]).reshape(-1, 4),
            "scores": torch.ones(len(anns)), "labels": torch.tensor([label[a["category_id"]] for a in anns], dtype=torch.long)}
    if with_masks:
        pred["masks"] = torch.from_numpy(np.stack([data.coco.annToMask(a) for a in anns])).float()[:, None]
    return pred


def test_ground_truth_as_detections_scores_ap_100(det_scenes):
    data = load_detection_set(f"coco:{det_scenes}", "val")
    results = [r for i in data.image_ids for r in to_coco_results(i, _ground_truth_as_predictions(data, i, True), data.category_ids)]
    for iou_type in ("bbox", "segm"):
        ap = coco_ap(data.coco, results, iou_type)
        assert ap["AP"] == pytest.approx(100.0) and ap["AP50"] == pytest.approx(100.0) and ap["AP75"] == pytest.approx(100.0)
    # half the objects missed: recall, hence AP, drops
    halved = results[::2]
    assert coco_ap(data.coco, halved, "bbox")["AP"] < 80
    assert coco_ap(data.coco, [], "bbox") == {k: 0.0 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}


class _Shifted(torch.nn.Module):
    """A stand-in detector: the ground truth, boxes shifted by a per-image amount (some miss IoU 0.75)."""

    def __init__(self, data):
        super().__init__()
        self.data, self.weight = data, torch.nn.Parameter(torch.zeros(1))
        self.transform = type("T", (), {"min_size": (64,)})()
        self.calls = 0

    def forward(self, images):
        self.calls += len(images)
        return [self._one() for _ in images]

    def _one(self):
        image_id = self.data.image_ids[self.order.pop(0)]
        pred = _ground_truth_as_predictions(self.data, image_id, False)
        pred["boxes"] = pred["boxes"] + (image_id % 4)
        return pred


def _evaluate(rank, world_size, root, expected):
    data = load_detection_set(f"coco:{root}", "val")
    model = _Shifted(data)
    model.order = list(range(rank, len(data.image_ids), world_size))  # the shard evaluate_detector walks
    got = evaluate_detector(model, data, DetectionConfig(task="bbox", test_size=64))
    assert model.calls == len(range(rank, len(data.image_ids), world_size))
    assert got["bbox"] == pytest.approx(expected), (rank, got)


def test_two_processes_evaluate_to_the_same_numbers_as_one(det_scenes):
    data = load_detection_set(f"coco:{det_scenes}", "val")
    model = _Shifted(data)
    model.order = list(range(len(data.image_ids)))
    single = evaluate_detector(model, data, DetectionConfig(task="bbox", test_size=64))["bbox"]
    assert 0 < single["AP"] < 100
    run_distributed(_evaluate, str(det_scenes), single)


def test_batched_evaluation_pairs_every_prediction_with_its_image(det_scenes):
    data = load_detection_set(f"coco:{det_scenes}", "val")
    scores = {}
    for n in (1, 3):  # 3: a last batch smaller than the others
        model = _Shifted(data)
        model.order = list(range(len(data.image_ids)))
        scores[n] = evaluate_detector(model, data, DetectionConfig(task="bbox", test_size=64, eval_batch_size=n))["bbox"]
        assert model.calls == len(data.image_ids) and not model.order
    assert len(data.image_ids) % 3 and scores[3] == scores[1]
