"""The segmentation recipe: pretrained vs random init, metrics.json, the card, resume."""
import json

import pytest
import torch
from huggingface_hub import ModelCard

from scene_ssl.export import save_pretrained
from scene_ssl.models import TimmBackbone
from scene_ssl.segmentation import SegmentationConfig, load_segmentation_set
from scene_ssl.segmentation.train import finetune_segmenter, make_segmentation_accelerator
from scene_ssl.train import list_checkpoints

from ..preempt import sigterm_at_step
from ..recipes.conftest import load_recipe

TINY = ["--schedule", "6", "--batch-size", "2", "--scale", "64,48", "--crop-size", "32,32", "--test-mode", "slide",
        "--test-scale", "64,48", "--test-crop", "32,32", "--test-stride", "24,24", "--head-channels", "16",
        "--aux-channels", "8", "--num-workers", "0", "--norm", "bn", "--log-every", "2"]


def test_quick_transfer_reports_miou_for_pretrained_and_random_init_and_fills_the_card(seg_scenes, tmp_path):
    torch.manual_seed(0)
    export = save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="mls_test",
                             train_config={"data": "scenes", "image_size": 32})
    rows = load_recipe("transfer_segmentation").main(["--model", str(export), "--data", f"coco:{seg_scenes}",
                                                      "--output-dir", str(tmp_path / "seg"), "--eval-every", "3", *TINY])
    assert set(rows) == {"pretrained", "random init"} and rows["random init"]["source"] == "random:test_resnet"
    for row in rows.values():
        scores = row["metrics"]["sem_seg"]
        assert all(0.0 <= scores[k] <= 100.0 for k in ("mIoU", "mAcc", "aAcc"))
        assert set(scores["per_class"]) == {"background", *(c["name"] for c in json.loads(
            (seg_scenes / "annotations" / "instances_val2017.json").read_text())["categories"])}
    saved = json.loads((tmp_path / "seg" / "metrics.json").read_text())
    assert saved["results"]["pretrained"]["metrics"]["sem_seg"]["mIoU"] == pytest.approx(rows["pretrained"]["metrics"]["sem_seg"]["mIoU"])
    logged = [json.loads(line) for line in (tmp_path / "seg" / "pretrained" / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in logged] == [2, 3, 4, 6] and "mIoU" in logged[1] and "loss_aux" in logged[0]
    card = ModelCard.load(export / "README.md")
    results = [r for r in card.data.eval_results if r.task_type == "image-segmentation"]
    assert {r.metric_type for r in results} == {"mIoU", "mAcc", "aAcc"}
    assert next(r for r in results if r.metric_type == "mIoU").metric_value == pytest.approx(
        rows["pretrained"]["metrics"]["sem_seg"]["mIoU"], abs=0.01)  # the card keeps 2 decimals


def test_a_bad_flag_or_data_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_recipe("transfer_segmentation").main(["--model", "random:test_resnet", "--data", "folder:/tmp",
                                                   "--output-dir", str(tmp_path / "o")])
    assert exit_.value.code == 2 and "has no label maps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        load_recipe("transfer_segmentation").main(["--head", "deeplab"])
    assert exit_.value.code == 2 and "head must be one of" in capsys.readouterr().err


def test_preempted_finetuning_resumes_to_the_uninterrupted_weights(seg_scenes, tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState, GradientState

    from scene_ssl.config import parse_config

    train = load_segmentation_set(f"coco:{seg_scenes}", "train")
    val = load_segmentation_set(f"coco:{seg_scenes}", "val")

    def run(out, resume=None, kill_at=None):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        # 16 images at 2: 8 iterations an epoch; 10 cross into epoch 1 (new crops), cut there and resumed there
        cfg = parse_config(SegmentationConfig, [*TINY, "--schedule", "10", "--output-dir", str(out), "--num-workers", "1",
                                                *(["--resume", resume] if resume else [])])
        if kill_at is not None:
            sigterm_at_step(monkeypatch, kill_at)
        result = finetune_segmenter(cfg, "random:test_resnet", train, val, out, make_segmentation_accelerator(cfg))
        monkeypatch.undo()
        return result

    straight = run(tmp_path / "a")
    cut = run(tmp_path / "b", resume="auto", kill_at=9)
    assert cut.stopped_by == "SIGTERM" and cut.iterations == 9 and not cut.metrics
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_00000009"]
    resumed = run(tmp_path / "b", resume="auto")
    assert resumed.finished and json.dumps(resumed.metrics) == json.dumps(straight.metrics)  # NaN-aware
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_seeds_report_the_mean_of_the_summary_numbers_in_strict_json(seg_scenes, tmp_path):
    args = ["--model", "random:test_resnet", "--data", f"coco:{seg_scenes}", "--output-dir", str(tmp_path / "seg"),
            *TINY, "--schedule", "2", "--seeds", "0,1"]
    summary = load_recipe("transfer_segmentation").main(args)
    ious = [summary["seeds"][s]["pretrained/sem_seg/mIoU"] for s in (0, 1)]
    assert summary["mean"]["pretrained/sem_seg/mIoU"] == pytest.approx(sum(ious) / 2)

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    saved = json.loads((tmp_path / "seg" / "metrics.json").read_text(), parse_constant=refuse)
    assert set(saved["results"]["pretrained"]["metrics"]["sem_seg"]) == {"mIoU", "mAcc", "aAcc"}  # no per-class columns


def test_a_sliding_stride_beyond_the_window_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_recipe("transfer_segmentation").main(["--test-mode", "slide", "--test-crop", "32,32", "--test-stride", "40,24"])
    assert exit_.value.code == 2 and "must not exceed test_crop" in capsys.readouterr().err
