"""VOC detection AP against an independent naive implementation (Detectron2's voc_eval, loop
for loop), on hand-made cases and random ones; the VOC classification mAP with ignored labels."""
import numpy as np
import pytest
import torch

from scene_ssl.data.annotations import coco_index
from scene_ssl.detection.voc_eval import voc_detection_ap
from scene_ssl.metrics import multilabel_metrics


def _gt(boxes):
    """boxes: [(image, category, (x0, y0, x1, y1), difficult)] -> COCO index."""
    images = sorted({b[0] for b in boxes} | {0, 1, 2})
    anns = [{"id": i + 1, "image_id": im, "category_id": c, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": 1.0,
             "iscrowd": 0, "difficult": int(d)} for i, (im, c, (x0, y0, x1, y1), d) in enumerate(boxes)]
    return coco_index({"images": [{"id": i, "width": 100, "height": 100} for i in images], "annotations": anns,
                           "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]})


def _dets(dets):
    return [{"image_id": im, "category_id": c, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s}
            for im, c, (x0, y0, x1, y1), s in dets]


def naive_voc(gt_boxes, dets, voc07):
    """Detectron2's voc_eval semantics, written out plainly: AP, AP50, AP75 in percent."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    def ap(rec, prec):
        if voc07:
            return sum(max([p for r, p in zip(rec, prec) if r >= t], default=0.0) for t in np.arange(0, 1.1, 0.1)) / 11
        mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])

    table = []
    for c in (1, 2):
        gts = [(im, box, d) for im, cc, box, d in gt_boxes if cc == c]
        npos = sum(1 for *_, d in gts if not d)
        if npos == 0:
            continue
        row = []
        for t in np.arange(0.5, 0.951, 0.05):
            used = [False] * len(gts)
            tp, fp = [], []
            for im, cc, box, _ in sorted((d for d in dets if d[1] == c), key=lambda d: -d[3]):
                cands = [(iou(box, g), j) for j, (gim, g, _) in enumerate(gts) if gim == im]
                best, j = max(cands, default=(-1.0, -1))
                if best > t:
                    if gts[j][2]:
                        tp.append(0), fp.append(0)
                    elif not used[j]:
                        used[j] = True
                        tp.append(1), fp.append(0)
                    else:
                        tp.append(0), fp.append(1)
                else:
                    tp.append(0), fp.append(1)
            ctp, cfp = np.cumsum(tp), np.cumsum(fp)
            rec = list(ctp / npos)
            prec = list(ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps))
            row.append(100 * ap(rec, prec) if tp else 0.0)
        table.append(row)
    mean = np.mean(table, axis=0)
    return {"AP": mean.mean(), "AP50": mean[0], "AP75": mean[5]}


def _ours(gt_boxes, dets, voc07):
    return voc_detection_ap(_gt(gt_boxes), _dets(dets), voc07=voc07)


GT = [(0, 1, (10, 10, 50, 50), False), (1, 1, (20, 20, 60, 70), False), (2, 2, (5, 5, 40, 30), False)]


@pytest.mark.parametrize("voc07", [True, False])
def test_perfect_detections_score_100(voc07):
    out = _ours(GT, [(im, c, box, 0.9) for im, c, box, _ in GT], voc07)
    assert out["AP"] == out["AP50"] == out["AP75"] == pytest.approx(100.0)


def test_half_missed_class_and_11_point_vs_area():
    dets = [(0, 1, (10, 10, 50, 50), 0.9), (2, 2, (5, 5, 40, 30), 0.8)]  # class 1's second box is missed
    area, eleven = _ours(GT, dets, False), _ours(GT, dets, True)
    # class 1: recall 0.5 at precision 1 -> area 50, 11-point 6/11; class 2 perfect
    assert area["AP50"] == pytest.approx((50 + 100) / 2)
    assert eleven["AP50"] == pytest.approx((600 / 11 + 100) / 2)
    assert area["AP50"] != eleven["AP50"]


def _aps(out):
    return [out[k] for k in ("AP", "AP50", "AP75")]


def test_difficult_boxes_neither_help_nor_hurt():
    dets = [(0, 1, (10, 10, 50, 50), 0.9), (2, 1, (70, 70, 90, 90), 0.85),  # the second is a false positive
            (1, 1, (20, 20, 60, 70), 0.7), (2, 2, (5, 5, 40, 30), 0.8)]
    base = _ours(GT, dets, True)
    assert base["AP50"] < 100
    hard = GT + [(0, 1, (60, 60, 90, 90), True)]
    assert _aps(_ours(hard, dets, True)) == pytest.approx(_aps(base))  # a missed difficult box costs no recall
    hit = dets + [(0, 1, (60, 60, 90, 90), 0.95)]
    assert _aps(_ours(hard, hit, True)) == pytest.approx(_aps(base))  # a hit on it gains nothing, costs nothing
    assert _aps(_ours(GT, hit, True)) != pytest.approx(_aps(base))  # where it is not difficult, the same box counts


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("voc07", [True, False])
def test_agrees_with_the_naive_implementation_on_random_cases(seed, voc07):
    rng = np.random.default_rng(seed)

    def box():
        x0, y0 = rng.uniform(0, 60, 2)
        return (x0, y0, x0 + rng.uniform(5, 40), y0 + rng.uniform(5, 40))

    gt = [(int(rng.integers(3)), int(rng.integers(1, 3)), box(), bool(rng.random() < 0.2)) for _ in range(12)]
    dets = [(im, c, tuple(v + rng.normal(0, 3) for v in b), float(rng.random())) for im, c, b, _ in gt if rng.random() < 0.8]
    dets += [(int(rng.integers(3)), int(rng.integers(1, 3)), box(), float(rng.random())) for _ in range(8)]
    ours, naive = _ours(gt, dets, voc07), naive_voc(gt, dets, voc07)
    for k in ("AP", "AP50", "AP75"):
        assert ours[k] == pytest.approx(naive[k], abs=1e-9), k


def test_classification_map_ignores_difficult_only_labels():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6], [0.1, 0.2]])
    targets = torch.tensor([[1, 0], [-1, 1], [0, 1], [1, -1]])  # -1: the class is there, but only as difficult
    m = multilabel_metrics(scores, targets)
    kept = [multilabel_metrics(scores[targets[:, c] >= 0][:, [c]], targets[targets[:, c] >= 0][:, [c]])["mAP"]
            for c in range(2)]
    assert m["mAP"] == pytest.approx(sum(kept) / 2)
    plain = multilabel_metrics(scores, targets.clamp_min(0))  # counting them as negatives changes the AP
    assert plain["mAP"] != pytest.approx(m["mAP"])
