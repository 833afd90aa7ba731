import json

import pytest
import torch
from huggingface_hub import ModelCard

from scene_ssl.detection import load_detection_set
from scene_ssl.detection.config import DetectionConfig
from scene_ssl.detection.train import finetune_detector, make_detection_accelerator
from scene_ssl.export import save_pretrained
from scene_ssl.models import TimmBackbone
from scene_ssl.train import list_checkpoints

from ..preempt import sigterm_at_step
from ..recipes.conftest import load_recipe

TINY = ["--schedule", "4", "--batch-size", "2", "--train-sizes", "56,64", "--test-size", "64", "--max-size", "96",
        "--fpn-channels", "16", "--rois-per-image", "16", "--proposals-train", "50", "--proposals-test", "50",
        "--num-workers", "0", "--norm", "bn", "--warmup-iters", "2", "--log-every", "2"]


def test_quick_transfer_reports_ap_for_pretrained_and_random_init_and_fills_the_card(det_scenes, tmp_path):
    torch.manual_seed(0)
    export = save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="mls_test",
                             train_config={"data": "scenes", "image_size": 32})
    rows = load_recipe("transfer_detection").main(["--model", str(export), "--data", f"coco:{det_scenes}", "--task", "segm",
                                                   "--output-dir", str(tmp_path / "det"), *TINY])
    assert set(rows) == {"pretrained", "random init"} and rows["random init"]["source"] == "random:test_resnet"
    for row in rows.values():
        assert set(row["metrics"]) == {"bbox", "segm"}
        assert all(0.0 <= v <= 100.0 for m in row["metrics"].values() for v in m.values())
    saved = json.loads((tmp_path / "det" / "metrics.json").read_text())
    assert saved["results"]["pretrained"]["metrics"]["bbox"]["AP"] == pytest.approx(rows["pretrained"]["metrics"]["bbox"]["AP"])
    card = ModelCard.load(export / "README.md")
    detection = [r for r in card.data.eval_results if r.task_type == "object-detection"]
    assert {r.metric_type for r in detection} == {f"{k}_{t}" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")
                                                   for t in ("bb", "mk")}


def test_boxes_only_data_cannot_train_masks(tmp_path, capsys):
    from ..data.test_hub import write_detection_parquet

    write_detection_parquet(tmp_path / "repo")
    with pytest.raises(SystemExit) as exit_:
        load_recipe("transfer_detection").main(["--model", "random:test_resnet", "--data", f"hf:{tmp_path / 'repo'}",
                                                "--task", "segm", "--output-dir", str(tmp_path / "o")])
    assert exit_.value.code == 2 and "boxes only" in capsys.readouterr().err


def test_preempted_finetuning_resumes_to_the_uninterrupted_weights(det_scenes, tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState, GradientState

    from scene_ssl.config import parse_config

    train = load_detection_set(f"coco:{det_scenes}", "train")
    val = load_detection_set(f"coco:{det_scenes}", "val")

    def run(out, resume=None, kill_at=None):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        # 24 images at 2: 12 iterations an epoch, so the run crosses into epoch 1 (new flips, drawn by a
        # persistent worker), is cut there and resumed there
        cfg = parse_config(DetectionConfig, [*TINY, "--schedule", "14", "--task", "bbox", "--output-dir", str(out),
                                             "--num-workers", "1", *(["--resume", resume] if resume else [])])
        if kill_at is not None:
            sigterm_at_step(monkeypatch, kill_at)
        result = finetune_detector(cfg, "random:test_resnet", train, val, out, make_detection_accelerator(cfg))
        monkeypatch.undo()
        return result

    straight = run(tmp_path / "a")
    cut = run(tmp_path / "b", resume="auto", kill_at=13)
    assert cut.stopped_by == "SIGTERM" and cut.iterations == 13 and not cut.metrics
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_00000013"]
    resumed = run(tmp_path / "b", resume="auto")
    assert resumed.finished and resumed.metrics == straight.metrics
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bad_boxes_and_unreadable_images_are_met_at_load_or_skipped_never_mid_training(det_scenes, tmp_path):
    import json
    import shutil
    import warnings

    root = tmp_path / "coco"
    shutil.copytree(det_scenes, root)
    for split in ("train", "val"):
        path = root / "annotations" / f"instances_{split}2017.json"
        data = json.loads(path.read_text())
        data["annotations"][0]["bbox"][2] = -5.0  # negative width
        data["annotations"][1]["bbox"] = [-50.0, -50.0, 20.0, 20.0]  # entirely outside its image
        data["annotations"][2]["bbox"][2] += 500.0  # reaches outside: clipped
        path.write_text(json.dumps(data))
        broken = root / f"{split}2017" / data["images"][3]["file_name"]
        broken.write_bytes(broken.read_bytes()[:100])  # a truncated file
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        rows = load_recipe("transfer_detection").main(["--model", "random:test_resnet", "--data", f"coco:{root}",
                                                       "--task", "bbox", "--compare-random", "false",
                                                       "--output-dir", str(tmp_path / "det"), *TINY, "--schedule", "13"])
    messages = [str(w.message) for w in seen]
    # main 8d5e37d: AssertionError (non-positive box) or DecodeError in the middle of training, nothing saved
    assert any("2 annotation(s) without a box inside their image, dropped" in m for m in messages), messages
    assert any(m.startswith("skipping unreadable image") for m in messages)
    assert any("1 unreadable image(s) left out of the evaluation" in m for m in messages)
    assert 0.0 <= rows["pretrained"]["metrics"]["bbox"]["AP"] <= 100.0


def test_seeds_run_each_seed_once_and_report_mean_and_std(det_scenes, tmp_path):
    import json

    torch.manual_seed(0)
    export = save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="t", train_config={"image_size": 32})
    args = ["--model", str(export), "--data", f"coco:{det_scenes}", "--task", "bbox", "--compare-random", "false",
            "--output-dir", str(tmp_path / "det"), *TINY, "--seeds", "0,1"]
    summary = load_recipe("transfer_detection").main(args)
    aps = [summary["seeds"][s]["pretrained/bbox/AP"] for s in (0, 1)]
    assert summary["mean"]["pretrained/bbox/AP"] == pytest.approx(sum(aps) / 2) and summary["n"]["pretrained/bbox/AP"] == 2
    assert (tmp_path / "det" / "seed_0" / "pretrained" / "metrics.json").is_file() is False  # one report, at the top
    saved = json.loads((tmp_path / "det" / "metrics.json").read_text())
    assert saved["results"]["pretrained"]["metrics"]["bbox"]["AP"] == pytest.approx(sum(aps) / 2)
    assert "(mean ± std of 2 runs)" in (export / "README.md").read_text()
    again = load_recipe("transfer_detection").main(args)  # both seeds finished: nothing is trained again
    assert again["seeds"] == summary["seeds"]
