"""The IoU metric against a naive per-pixel count, over images and over processes."""
import math

import numpy as np
import pytest
import torch

from scene_ssl.segmentation.metrics import class_areas, segmentation_scores, sum_over_processes

from ..distributed_helpers import run_distributed


def naive_scores(preds, labels, num_classes, ignore=255):
    """Pixel by pixel, in plain Python: mmseg's IoUMetric over a whole evaluation set."""
    inter, pred_area, label_area = [0] * num_classes, [0] * num_classes, [0] * num_classes
    for pred, label in zip(preds, labels):
        for p, t in zip(pred.ravel().tolist(), label.ravel().tolist()):
            if t == ignore:
                continue
            pred_area[p] += 1
            label_area[t] += 1
            if p == t:
                inter[p] += 1
    iou = [inter[c] / (pred_area[c] + label_area[c] - inter[c]) if pred_area[c] + label_area[c] - inter[c] else math.nan
           for c in range(num_classes)]
    acc = [inter[c] / label_area[c] if label_area[c] else math.nan for c in range(num_classes)]
    return {"mIoU": 100 * np.nanmean(iou), "mAcc": 100 * np.nanmean(acc), "aAcc": 100 * sum(inter) / sum(label_area),
            "IoU": iou, "Acc": acc}


def _images(seed, n=4, num_classes=5):
    g = torch.Generator().manual_seed(seed)
    preds, labels = [], []
    for i in range(n):
        h, w = 7 + i, 9 + 2 * i  # images of different sizes
        label = torch.randint(0, num_classes - 2, (h, w), generator=g)  # the last two classes never in the labels
        label[torch.rand(h, w, generator=g) < 0.2] = 255  # ignored pixels
        pred = torch.randint(0, num_classes - 1, (h, w), generator=g)  # class 3: predicted, absent; class 4: neither
        preds.append(pred)
        labels.append(label)
    return preds, labels


def test_dataset_level_scores_equal_a_naive_per_pixel_count():
    preds, labels = _images(0)
    areas = sum(class_areas(p, t, 5) for p, t in zip(preds, labels))
    got, want = segmentation_scores(areas, list("abcde")), naive_scores(preds, labels, 5)
    for key in ("mIoU", "mAcc", "aAcc"):
        assert got[key] == pytest.approx(want[key])
    assert got["per_class"]["d"]["IoU"] == 0.0 and math.isnan(got["per_class"]["d"]["Acc"])  # predicted, absent: IoU 0
    assert math.isnan(got["per_class"]["e"]["IoU"])  # neither labelled nor predicted: left out of the mean
    # not the mean of per-image scores
    per_image = np.mean([segmentation_scores(class_areas(p, t, 5), list("abcde"))["mIoU"] for p, t in zip(preds, labels)])
    assert per_image != pytest.approx(got["mIoU"])


def test_a_label_beyond_the_classes_is_an_error():
    with pytest.raises(ValueError, match="class 7, beyond the 5 classes"):
        class_areas(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 7), 5)


def _sharded(rank, world, preds, labels, want):
    mine = sum(class_areas(p, t, 5) for p, t in list(zip(preds, labels))[rank::world])
    got = segmentation_scores(sum_over_processes(mine), list("abcde"))
    for key in ("mIoU", "mAcc", "aAcc"):
        assert got[key] == pytest.approx(want[key])


def test_areas_summed_over_processes_equal_one_process():
    preds, labels = _images(1, n=5)
    run_distributed(_sharded, preds, labels, naive_scores(preds, labels, 5))
