"""--report-to: which trackers a run reports to, and that they get what train_log.jsonl gets."""
import json

import pytest
from accelerate.tracking import GeneralTracker

from scene_ssl import trackers
from scene_ssl.trackers import check_report_to, trackers_for


class ListTracker(GeneralTracker):
    """A tracker that needs no network: it keeps what it is given."""

    name = "list"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.config, self.logs, self.finished = None, [], False

    @property
    def tracker(self):
        return self.logs

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None, **kwargs):
        self.logs.append({"step": step, **values})

    def finish(self):
        self.finished = True


def test_report_to_names_what_is_installed(monkeypatch):
    installed = {"tensorboard": True, "wandb": False, "mlflow": True}
    monkeypatch.setattr(trackers, "_installed", lambda name: installed[name])
    assert trackers_for("auto") == ["tensorboard"] and trackers_for("none") == []
    assert trackers_for("all") == ["tensorboard", "mlflow"] and trackers_for("mlflow,tensorboard") == ["mlflow", "tensorboard"]
    with pytest.raises(ValueError, match=r"wandb is not installed \(pip install wandb\)"):
        check_report_to("wandb")
    with pytest.raises(ValueError, match="report_to must be one of"):
        check_report_to("comet")
    installed["tensorboard"] = False
    assert trackers_for("auto") == []  # auto: no tracker, no error; train_log.jsonl still


def test_the_pretraining_trackers_get_every_logged_number(tmp_path, monkeypatch):
    from accelerate.state import AcceleratorState, GradientState

    from scene_ssl.config import load_config
    from scene_ssl.data import make_scenes
    from scene_ssl.models import MLSConfig
    from scene_ssl.train import make_accelerator, pretrain

    monkeypatch.setenv("SCENE_SSL_CACHE", str(tmp_path / "cache"))
    scenes = make_scenes(tmp_path / "s", num_classes=3, num_train=16, num_val=4, image_size=(40, 30))
    tracker = ListTracker()
    monkeypatch.setattr(trackers, "trackers_for", lambda report_to: [tracker])
    cfg = load_config(MLSConfig, None, dict(data=f"coco:{scenes}", backbone="test_resnet", image_size=32, batch_size=8,
                                            num_workers=0, max_steps=4, log_every=2, queue_size=16, dim=8, hidden_dim=16,
                                            topk=2, output_dir=str(tmp_path / "out"), export=False))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    pretrain(cfg, accelerator=make_accelerator(cfg))
    lines = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4] and tracker.logs == lines  # the same numbers, the same steps
    assert tracker.config["topk"] == 2 and tracker.finished


def test_the_transfer_loop_trackers_get_every_logged_number(tmp_path, monkeypatch):
    from scene_ssl.data import make_scenes

    from ..recipes.conftest import load_recipe

    monkeypatch.setenv("SCENE_SSL_CACHE", str(tmp_path / "cache"))
    scenes = make_scenes(tmp_path / "s", num_classes=3, num_train=8, num_val=4, image_size=(48, 36))
    made = []
    monkeypatch.setattr(trackers, "trackers_for", lambda report_to: made.append(ListTracker()) or [made[-1]])
    load_recipe("transfer_segmentation").main([
        "--model", "random:test_resnet", "--data", f"coco:{scenes}", "--output-dir", str(tmp_path / "seg"),
        "--schedule", "4", "--batch-size", "2", "--scale", "48,36", "--crop-size", "32,32", "--test-scale", "48,36",
        "--head-channels", "8", "--aux-channels", "8", "--num-workers", "0", "--norm", "bn", "--log-every", "2",
        "--eval-every", "2", "--compare-random", "false"])
    lines = [json.loads(line) for line in (tmp_path / "seg" / "pretrained" / "train_log.jsonl").read_text().splitlines()]
    logs = [{"iteration": r.pop("step"), **r} for r in made[0].logs]
    assert [r["iteration"] for r in lines] == [2, 4] and "mIoU" in lines[0] and logs == lines
    assert made[0].config["schedule"] == "4" and made[0].finished
