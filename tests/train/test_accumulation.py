"""Gradient accumulation across epoch boundaries: every batch trains once per epoch, in
ceil(batches / accumulation) optimiser steps, the last step taking what is left."""
import pytest
import torch
from accelerate import Accelerator

from scene_ssl.models import MLS
from scene_ssl.schedule import cosine_lr

from .test_loop import _state, mls_cfg, run, with_method


class _Recorded(MLS):
    """MLS that records what the loop gives it."""

    log: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Recorded.log = {"indices": [], "forwards": [], "steps": [], "losses": []}

    def begin_step(self, at):
        super().begin_step(at)
        _Recorded.log["steps"].append(at.step)
        _Recorded.log["forwards"].append(at.forwards)

    def forward(self, batch):
        _Recorded.log["indices"].append(batch["index"].tolist())
        out = super().forward(batch)
        _Recorded.log["losses"].append(out["loss"].detach().clone())
        return out


def test_every_batch_trains_once_per_epoch_with_a_partial_last_step(tiny_scenes, tmp_path, monkeypatch):
    # 48 images, batch 4: 12 batches per epoch; accumulation 5: steps of 5, 5 and 2 forwards
    backward_args, sgd_lrs = [], []
    real_backward, real_step = Accelerator.backward, torch.optim.SGD.step
    monkeypatch.setattr(Accelerator, "backward",
                        lambda self, loss, **kw: (backward_args.append(loss.detach().clone()), real_backward(self, loss, **kw))[1])
    monkeypatch.setattr(torch.optim.SGD, "step",
                        lambda self, *a, **kw: (sgd_lrs.append(self.param_groups[0]["lr"]), real_step(self, *a, **kw))[1])
    out = run(mls_cfg(tiny_scenes, tmp_path, with_method(_Recorded), epochs=3, batch_size=4, grad_accum_steps=5,
                      save_every=0, log_every=100, export=False))
    log = _Recorded.log
    assert out.step == out.total_steps == 9 and len(sgd_lrs) == 9
    assert len(log["indices"]) == 36  # main 8d5e37d: 24 forwards, the run claiming 6 of 6 steps
    for epoch in range(3):
        seen = sorted(i for batch in log["indices"][epoch * 12:(epoch + 1) * 12] for i in batch)
        assert seen == list(range(48)), f"epoch {epoch} did not see every image exactly once"
    assert log["steps"] == list(range(9)) and log["forwards"] == [5, 5, 2] * 3
    # each forward's loss counts 1 / (forwards of its step): a step averages its own forwards
    scales = [n for n in log["forwards"] for _ in range(n)]
    for loss, sent, n in zip(log["losses"], backward_args, scales):
        torch.testing.assert_close(sent, loss / n)


def test_resume_mid_epoch_under_accumulation_gives_the_uninterrupted_weights(tiny_scenes, tmp_path):
    kw = dict(epochs=2, batch_size=4, grad_accum_steps=5, save_every=0, log_every=100, export=False)
    straight = run(mls_cfg(tiny_scenes, tmp_path / "a", **kw))
    first = run(mls_cfg(tiny_scenes, tmp_path / "b", stop_after=4, **kw))  # epoch 1, after its first step
    assert first.step == 4
    resumed = run(mls_cfg(tiny_scenes, tmp_path / "b", resume="auto", **kw))
    assert resumed.step == straight.step == 6
    a, b = _state(straight.model), _state(resumed.model)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming"


def test_the_epoch_monitor_fires_after_every_epoch_under_accumulation(tiny_scenes, tmp_path):
    epochs_seen = []

    def monitor(backbone, accelerator):
        epochs_seen.append(len(epochs_seen))
        return {"knn_mAP": 0.0}

    cfg = mls_cfg(tiny_scenes, tmp_path, epochs=3, batch_size=4, grad_accum_steps=5, save_every=0, log_every=100,
                  export=False, monitor_every=1, probe_data="scenes")
    from accelerate.state import AcceleratorState, GradientState

    from scene_ssl.train import pretrain
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    out = pretrain(cfg, accelerator=Accelerator(cpu=True), monitor=monitor)
    assert [m["epoch"] for m in out.monitor] == [0, 1, 2, 3]  # main 8d5e37d: [0, 3]


@pytest.mark.parametrize("accum", [1, 5])
def test_every_step_runs_at_its_scheduled_learning_rate_the_first_included(tiny_scenes, tmp_path, monkeypatch, accum):
    lrs, real_step = [], torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step",
                        lambda self, *a, **kw: (lrs.append(self.param_groups[0]["lr"]), real_step(self, *a, **kw))[1])
    out = run(mls_cfg(tiny_scenes, tmp_path, epochs=3, batch_size=4, grad_accum_steps=accum, warmup_epochs=1,
                      base_lr=0.5, save_every=0, log_every=100, export=False))
    steps_per_epoch = -(-12 // accum)
    lr = 0.5 * 4 * accum / 256
    expected = [cosine_lr(k, out.total_steps, lr, steps_per_epoch) for k in range(out.total_steps)]
    assert lrs == pytest.approx(expected)  # main 8d5e37d: the first step at the full lr
    assert lrs[0] < lrs[steps_per_epoch - 1] <= lr
