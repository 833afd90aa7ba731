import dataclasses
import math
import warnings

import pytest
import timm
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from scene_ssl.config import load_config
from scene_ssl.export import export_run
from scene_ssl.models import MLS, BAMConfig, MLSConfig
from scene_ssl.train import NonFiniteLossError, find_checkpoint, list_checkpoints, pretrain


def mls_cfg(tiny_scenes, out, cls=MLSConfig, **kw):
    base = dict(data=f"coco:{tiny_scenes}", backbone="test_resnet", image_size=24, batch_size=8, num_workers=0,
                base_lr=0.05, queue_size=32, dim=16, hidden_dim=32, topk=4, ema_momentum=0.9, log_every=1,
                save_every=2, output_dir=str(out), channels_last=False, export_tag="mls_test")
    return load_config(cls, None, {**base, **kw})


def with_method(method_class):
    """An MLSConfig that builds ``method_class`` (an instrumented MLS) with the config's hyperparameters."""
    class Config(MLSConfig):
        def build_method(self):
            return method_class(self.backbone, **self.queue_kwargs(), topk=self.topk, mls_weight=self.mls_weight,
                                warmup_epochs=self.mls_warmup_epochs)
    return Config


def run(cfg):
    # Accelerate's state is a per-process singleton: start each run from a clean one
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return pretrain(cfg, accelerator=Accelerator(cpu=True, mixed_precision=cfg.mixed_precision))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("ema_schedule", ["constant", "cosine"])
def test_resume_gives_the_same_run(tiny_scenes, tmp_path, ema_schedule):
    straight = run(mls_cfg(tiny_scenes, tmp_path / "a", max_steps=8, ema_schedule=ema_schedule))
    first = run(mls_cfg(tiny_scenes, tmp_path / "b", max_steps=8, stop_after=4, ema_schedule=ema_schedule))
    assert first.step == 4 and not first.finished
    resumed = run(mls_cfg(tiny_scenes, tmp_path / "b", max_steps=8, resume="latest", ema_schedule=ema_schedule))
    assert resumed.step == 8
    a, b = _state(straight.model), _state(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming"
    assert any(k.startswith("queue") for k in a)
    assert resumed.losses["loss"] == straight.losses["loss"]


def test_export_loads_with_timm_and_matches(tiny_scenes, tmp_path):
    cfg = mls_cfg(tiny_scenes, tmp_path / "a", max_steps=2)
    out = run(cfg)
    folder = export_run(out, cfg)
    assert folder == tmp_path / "a" / "export"
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    trained = out.model.encoder.model.state_dict()
    got = loaded.state_dict()
    assert got.keys() == trained.keys()
    for k in got:
        assert torch.equal(got[k], trained[k]), k
    assert loaded.pretrained_cfg["tag"] == "mls_test"
    assert loaded.num_classes == 0


def test_crash_during_save_keeps_the_previous_checkpoint(tiny_scenes, tmp_path, monkeypatch):
    run(mls_cfg(tiny_scenes, tmp_path, max_steps=4, stop_after=2, save_every=0))
    good = find_checkpoint("latest", tmp_path / "checkpoints")
    before = load_file(good / "model.safetensors")

    def crash(self, output_dir, **kwargs):
        from pathlib import Path
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Accelerator, "save_state", crash)
    with pytest.raises(OSError, match="disk full"):
        run(mls_cfg(tiny_scenes, tmp_path, max_steps=4, resume="latest"))
    monkeypatch.undo()
    assert list_checkpoints(tmp_path / "checkpoints") == [good]
    after = load_file(find_checkpoint("latest", tmp_path / "checkpoints") / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert run(mls_cfg(tiny_scenes, tmp_path, max_steps=4, resume="latest")).step == 4


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_scenes, tmp_path):
    class Exploding(MLS):
        calls = 0

        def forward(self, batch):
            out = super().forward(batch)
            Exploding.calls += 1
            if Exploding.calls > 3:
                out["loss"] = out["loss"] * float("nan")
            return out

    with pytest.raises(NonFiniteLossError, match="step_00000002"):
        run(mls_cfg(tiny_scenes, tmp_path, with_method(Exploding), max_steps=6, save_every=2, log_every=3))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000002"]


def test_bam_recipe_path_and_grad_accumulation(tiny_scenes, tmp_path):
    cfg = load_config(BAMConfig, None, dict(
        data=f"coco:{tiny_scenes}", backbone="test_resnet", image_size=16, batch_size=4, num_workers=0, max_steps=2,
        grad_accum_steps=2, proj_dim=16, proj_hidden_dim=16, pred_hidden_dim=8, output_dir=str(tmp_path), export=False,
        channels_last=True, clip_grad_norm=1.0, log_every=1))
    out = run(cfg)
    assert out.step == 2 and math.isfinite(out.losses["loss"]) and "loss_ia" in out.losses


def test_grad_accumulation_steps_once_per_n_batches_and_keeps_one_ema_update_per_step(tiny_scenes, tmp_path, monkeypatch):
    sgd_steps, forwards, init = [], [], {}
    real_step = torch.optim.SGD.step

    def counting_step(self, *args, **kwargs):
        sgd_steps.append(1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", counting_step)

    class Recorded(MLS):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            with torch.no_grad():  # a target that differs from the online weights, so the EMA shows
                for p in [*self.momentum_encoder.parameters(), *self.momentum_projector.parameters()]:
                    p.add_(torch.randn_like(p))
            init["target"] = [p.clone() for p in [*self.momentum_encoder.parameters(), *self.momentum_projector.parameters()]]
            init["online"] = [p.clone() for p in [*self.encoder.parameters(), *self.projector.parameters()]]
            self.register_forward_hook(lambda *_: forwards.append(1))

    # lr 0: the online weights stay put, so after 2 optimiser steps the EMA target must be
    # m^2 t0 + (1 - m^2) o exactly, however many micro-batches each step had
    cfg = mls_cfg(tiny_scenes, tmp_path, with_method(Recorded), max_steps=2, grad_accum_steps=2, batch_size=4,
                  base_lr=0.0, ema_momentum=0.9, export=False)
    out = run(cfg)
    assert out.step == 2 and len(forwards) == 4 and len(sgd_steps) == 2
    model = out.model
    assert model.momentum == pytest.approx(0.9 ** 0.5)
    target = [*model.momentum_encoder.parameters(), *model.momentum_projector.parameters()]
    online = [*model.encoder.parameters(), *model.projector.parameters()]
    for o0, o in zip(init["online"], online):
        assert torch.equal(o0, o)
    for t0, o, t in zip(init["target"], init["online"], target):
        torch.testing.assert_close(t, 0.81 * t0 + 0.19 * o, rtol=1e-5, atol=1e-6)


def test_an_accelerator_that_accumulates_itself_is_refused(tiny_scenes, tmp_path):
    cfg = mls_cfg(tiny_scenes, tmp_path, max_steps=2, grad_accum_steps=2)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    with pytest.raises(ValueError, match="use --grad-accum-steps rather than accelerate launch --gradient_accumulation_steps"):
        pretrain(cfg, accelerator=Accelerator(cpu=True, gradient_accumulation_steps=2))


def test_bf16_mixed_precision_on_cpu_trains_with_float32_loss_math(tiny_scenes, tmp_path):
    seen = {}

    def record(key, dtype):
        seen.setdefault(key, dtype)  # (a hook that returns something replaces the output)

    class Recorded(MLS):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.encoder.register_forward_hook(lambda m, i, o: record("features", o.dtype))
            self.register_forward_hook(lambda m, i, o: record("loss", o["loss"].dtype))
            seen["init"] = [p.clone() for p in self.encoder.parameters()]

    out = run(mls_cfg(tiny_scenes, tmp_path, with_method(Recorded), max_steps=3, mixed_precision="bf16", export=False))
    assert seen["features"] == torch.bfloat16 and seen["loss"] == torch.float32
    assert all(math.isfinite(v) for k, v in out.losses.items() if k.startswith("loss"))
    params = list(out.model.encoder.parameters())
    assert all(p.dtype == torch.float32 for p in params)  # autocast: the weights stay float32
    assert any(not torch.equal(a, b) for a, b in zip(seen["init"], params))


def test_unreadable_images_are_warned_once_and_counted(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    cfg = load_config(MLSConfig, None, dict(
        data=f"folder:{folder}", backbone="test_resnet", image_size=16, batch_size=11, num_workers=0, max_steps=3,
        queue_size=32, dim=8, hidden_dim=16, topk=2, output_dir=str(tmp_path / "out"), export=False, log_every=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run(cfg)
    mentions = [w for w in caught if "broken.jpg" in str(w.message)]
    assert len(mentions) == 1
    assert out.losses["skipped_images"] == 1 and out.skipped_images == 1  # met at every step, counted once


def test_bad_data_spec_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset spec"):
        run(load_config(MLSConfig, None, dict(data="imagenet", output_dir=str(tmp_path), backbone="test_resnet")))


def test_bad_method_hyperparameter_fails_before_any_data_work(tmp_path):
    # the data spec is bad too: the model's check must come first, before data is touched
    cfg = load_config(MLSConfig, None, dict(data="imagenet", output_dir=str(tmp_path), backbone="test_resnet",
                                            queue_size=16, topk=32))
    with pytest.raises(ValueError, match="topk=32 must not exceed queue_size=16"):
        run(cfg)


def test_resume_auto_starts_fresh_then_resumes(tiny_scenes, tmp_path, capsys):
    first = run(mls_cfg(tiny_scenes, tmp_path, max_steps=6, stop_after=3, resume="auto"))
    assert first.step == 3 and "starting fresh" in capsys.readouterr().out
    second = run(mls_cfg(tiny_scenes, tmp_path, max_steps=6, resume="auto"))
    assert second.step == 6 and second.finished and "resumed from" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="--resume auto starts fresh"):
        run(mls_cfg(tiny_scenes, tmp_path / "empty", max_steps=2, resume="latest"))


def test_sigterm_mid_run_checkpoints_and_the_resumed_run_ends_where_an_uninterrupted_one_does(tiny_scenes, tmp_path):
    import os
    import signal

    straight = run(mls_cfg(tiny_scenes, tmp_path / "a", max_steps=8, save_every=0))

    class Preempted(MLS):
        forwards = 0

        def forward(self, batch):
            Preempted.forwards += 1
            if Preempted.forwards == 3:  # the scheduler's warning arrives during step 3
                os.kill(os.getpid(), signal.SIGTERM)
            return super().forward(batch)

    before = signal.getsignal(signal.SIGTERM)
    cut = run(mls_cfg(tiny_scenes, tmp_path / "b", with_method(Preempted), max_steps=8, save_every=0, resume="auto"))
    assert signal.getsignal(signal.SIGTERM) is before  # the loop's handler is gone again
    assert cut.stopped_by == "SIGTERM" and cut.step == 3 and not cut.finished
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_00000003"]
    resumed = run(mls_cfg(tiny_scenes, tmp_path / "b", max_steps=8, save_every=0, resume="auto"))
    assert resumed.step == 8
    a, b = _state(straight.model), _state(resumed.model)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after the preempted run resumed"


@pytest.mark.parametrize("bad,match", [({"epochs": 0}, "epochs must be >= 1"), ({"max_steps": 0}, "max_steps must be >= 1"),
                                       ({"batch_size": 0}, "batch_size"), ({"render": "gpu"}, "render")])
def test_runs_that_cannot_train_are_refused_before_anything_is_written(tiny_scenes, tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        run(mls_cfg(tiny_scenes, tmp_path, **bad))
    assert not (tmp_path / "config.yaml").exists()


def test_config_is_written_only_after_the_data_spec_was_checked(tmp_path):
    cfg = load_config(MLSConfig, None, dict(data=f"coco:{tmp_path / 'nope'}", output_dir=str(tmp_path / "out"),
                                            backbone="test_resnet", queue_size=16, topk=2))
    with pytest.raises(FileNotFoundError, match="COCO folder not found"):
        run(cfg)
    assert not (tmp_path / "out").exists()


def _log_rows(folder):
    import json
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_mls_warmup_trains_infonce_alone_first_and_diagnostics_are_logged(tiny_scenes, tmp_path):
    # 48 images / batch 8 = 6 steps per epoch; warm-up 0.5 epoch = 3 steps
    run(mls_cfg(tiny_scenes, tmp_path, max_steps=6, mls_warmup_epochs=0.5, export=False))
    rows = _log_rows(tmp_path)
    for row in rows:
        bce_on = row["step"] > 3  # step s's loss was computed with the schedule of step s - 1
        assert (row["loss"] == pytest.approx(row["loss_nce"])) != bce_on, row
        for key in ("z_std", "z_norm", "sim_pos", "sim_neg", "queue_mean_norm", "pl_precision", "pl_chance"):
            assert key in row and math.isfinite(row[key]), (key, row)
        assert 0.0 <= row["pl_chance"] <= 1.0 and 0.0 <= row["pl_precision"] <= 1.0


def test_monitor_runs_every_few_epochs_and_is_logged(tiny_scenes, tmp_path):
    weights = []

    def monitor(backbone, accelerator):
        weights.append([p.detach().clone() for p in backbone.parameters()])
        return {"knn_mAP": 12.5}

    cfg = mls_cfg(tiny_scenes, tmp_path, epochs=4, max_steps=None, monitor_every=2, export=False)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    out = pretrain(cfg, accelerator=Accelerator(cpu=True), monitor=monitor)
    assert [m["epoch"] for m in out.monitor] == [0, 2, 4]  # 0: before the first step, the random-init reference
    assert [r["knn_mAP"] for r in _log_rows(tmp_path) if "knn_mAP" in r] == [12.5, 12.5, 12.5]
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], weights[1]))  # trained in between
    assert all(torch.equal(a, b) for a, b in zip(weights[2], out.model.encoder.parameters()))  # the final weights


def test_monitor_uses_the_probe_image_size(tiny_scenes, tmp_path):
    from scene_ssl.probe.monitor import KNNMonitor

    cfg = mls_cfg(tiny_scenes, tmp_path, monitor_every=2, probe_data="scenes", image_size=32, probe_image_size=48)
    assert KNNMonitor.from_config(cfg).image_size == 48
    assert KNNMonitor.from_config(dataclasses.replace(cfg, monitor_every=0)) is None


def test_sync_bn_converts_every_batchnorm(tiny_scenes, tmp_path):
    out = run(mls_cfg(tiny_scenes, tmp_path, max_steps=2, sync_bn=True, export=False))
    bns = [m for m in out.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, torch.nn.SyncBatchNorm) for m in bns)


@pytest.fixture(scope="module")
def tiny_shards(tiny_scenes, tmp_path_factory):
    from scene_ssl.data.shards import write_shards

    return write_shards(f"coco:{tiny_scenes}", "train", tmp_path_factory.mktemp("wds"), shard_size=6, progress=False)[0].parent


def test_wds_shards_train_and_resume_exactly(tiny_shards, tmp_path):
    spec = f"wds:{tiny_shards}"  # 8 shards of 6: 6 batches of 8 per epoch, 8 steps cross an epoch
    straight = run(mls_cfg(tiny_shards, tmp_path / "a", data=spec, max_steps=8, save_every=0, export=False))
    first = run(mls_cfg(tiny_shards, tmp_path / "b", data=spec, max_steps=8, stop_after=3, export=False))
    assert first.step == 3
    resumed = run(mls_cfg(tiny_shards, tmp_path / "b", data=spec, max_steps=8, resume="auto", export=False))
    a, b = _state(straight.model), _state(resumed.model)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming a streamed run"


def test_hf_streaming_from_a_local_parquet_folder_trains(tiny_scenes, tmp_path):
    from scene_ssl.data import load_dataset

    folder = tmp_path / "parquet" / "data"
    folder.mkdir(parents=True)
    data = load_dataset(f"coco:{tiny_scenes}", "train")
    for i in range(4):  # four files: four shards
        data.shard(4, i, contiguous=True).to_parquet(str(folder / f"train-{i:05d}-of-00004.parquet"))
    out = run(mls_cfg(tiny_scenes, tmp_path / "out", data=f"hf:{tmp_path / 'parquet'}?streaming=1", max_steps=3,
                      export=False))
    assert out.step == 3 and math.isfinite(out.losses["loss"])


@pytest.mark.parametrize("tf32", [False, True])
def test_tf32_matmuls_only_when_asked(tf32):
    # (a stand-in accelerator on a CUDA device: the flags are process-wide, set back after)
    from types import SimpleNamespace

    from scene_ssl.train.loop import _fast_backends

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        _fast_backends(SimpleNamespace(device=torch.device("cuda")), tf32)
        assert torch.backends.cuda.matmul.allow_tf32 is tf32  # main 8d5e37d: always True (the losses' float32 promise broken)
        assert torch.backends.cudnn.allow_tf32 is True
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) = before


def test_a_one_process_moco_family_run_says_shuffle_bn_cannot_act(tiny_scenes, tmp_path, capsys):
    run(mls_cfg(tiny_scenes, tmp_path, max_steps=1, export=False))
    assert "one process with bn_splits 1: shuffle-BN cannot act" in capsys.readouterr().out
    run(mls_cfg(tiny_scenes, tmp_path / "b", max_steps=1, export=False, bn_splits=2))
    assert "shuffle-BN cannot act" not in capsys.readouterr().out
