"""The fault suite: crashes, kills, damaged checkpoints and full disks end runs the way they
should — a non-zero exit in bounded time, no process left behind, the last good checkpoint
intact, and ``--resume auto`` carrying on from the newest intact checkpoint.

Each fault runs the MLS recipe in a process of its own (``fault_driver.py``), marked with an
environment variable, so that the process table can be searched for anything it left behind.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from scene_ssl.config import load_config
from scene_ssl.models import MLSConfig
from scene_ssl.train import DamagedCheckpoint, find_checkpoint, list_checkpoints, pretrain

from ..launching import accelerate_launch, job_env, new_mark, nothing_left_behind

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "fault_driver.py"
FLAGS = ["--backbone", "test_resnet", "--image-size", "24", "--batch-size", "8", "--queue-size", "32", "--dim", "16",
         "--hidden-dim", "32", "--topk", "4", "--max-steps", "6", "--save-every", "2", "--keep-checkpoints", "3",
         "--log-every", "1", "--probe-data", "none", "--export", "false", "--channels-last", "false", "--num-workers", "2"]


def run_fault(fault: str, out: Path, data: Path, *extra: str, launch: list[str] | None = None,
              timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the recipe with ``fault``; assert it ended within ``timeout`` and left no process."""
    mark = new_mark()
    cmd = [*(launch or [sys.executable]), str(DRIVER), fault, str(out), "--data", f"coco:{data}", *FLAGS, *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=job_env(out.parent, mark), capture_output=True, text=True, timeout=timeout)
    proc.wall = time.monotonic() - start
    nothing_left_behind(mark)
    return proc


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from scene_ssl.data import make_scenes

    return make_scenes(tmp_path_factory.mktemp("scenes") / "s", num_classes=4, num_train=48, num_val=8, image_size=(48, 36))


@pytest.fixture(scope="module")
def uninterrupted(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "out"
    proc = run_fault("none", out, scenes)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(str(out / "final_rank0.safetensors"))


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_sigkill_after_a_checkpoint_then_resume_auto_gives_the_uninterrupted_weights(scenes, uninterrupted, tmp_path):
    out = tmp_path / "out"
    killed = run_fault("sigkill_after_checkpoint", out, scenes, "--resume", "auto")
    assert killed.returncode == -9 and [p.name for p in list_checkpoints(out / "checkpoints")][-1] == "step_00000004"
    resumed = run_fault("none", out, scenes, "--resume", "auto")
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout, resumed.stderr[-3000:]
    _same(load_file(str(out / "final_rank0.safetensors")), uninterrupted)


def test_an_exception_in_a_step_with_workers_exits_nonzero_promptly_leaving_no_process(scenes, tmp_path):
    proc = run_fault("raise_in_step", tmp_path / "out", scenes, timeout=120)
    assert proc.returncode != 0 and "injected fault in a training step" in proc.stderr
    assert proc.wall < 60, f"took {proc.wall:.0f} s to end"


@pytest.mark.parametrize("fault", ["disk_full_check", "disk_full_write"])
def test_a_full_disk_is_one_line_and_the_previous_checkpoint_stays_intact(scenes, tmp_path, fault):
    out = tmp_path / "out"
    proc = run_fault(fault, out, scenes, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and str(out / "checkpoints") in errors[0]
    assert ("needed" in errors[0]) and "step_00000002 is intact" in errors[0]
    checkpoints = list_checkpoints(out / "checkpoints")
    assert [p.name for p in checkpoints] == ["step_00000002"]
    assert find_checkpoint("auto", out / "checkpoints") == checkpoints[0]  # whole: it passes its manifest
    assert not list((out / "checkpoints").glob(".tmp-*"))  # the half-written one is gone


def test_a_full_disk_at_the_export_is_one_line_too(scenes, tmp_path):
    out = tmp_path / "out"
    proc = run_fault("disk_full_export", out, scenes, "--export", "true", timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "the export export" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and not (out / "export").exists() and not (out / ".tmp-export").exists()
    assert [p.name for p in list_checkpoints(out / "checkpoints")][-1] == "step_00000006"  # the run itself is kept


def test_a_killed_rank_ends_the_other_one(scenes, tmp_path):
    proc = run_fault("kill_rank1", tmp_path / "out", scenes, "--num-workers", "1", launch=accelerate_launch(2), timeout=240)
    assert proc.returncode != 0 and not (tmp_path / "out" / "final_rank0.safetensors").exists()


# -- damaged checkpoints (in this process) ---------------------------------------------------

def _cfg(scenes, out, **kw):
    base = dict(data=f"coco:{scenes}", backbone="test_resnet", image_size=24, batch_size=8, num_workers=0, queue_size=32,
                dim=16, hidden_dim=32, topk=4, log_every=1, save_every=2, keep_checkpoints=3, output_dir=str(out),
                channels_last=False, export=False, probe_data=None)
    return load_config(MLSConfig, None, {**base, **kw})


def _run(cfg):
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return pretrain(cfg, accelerator=Accelerator(cpu=True))


def _weights(run) -> dict:
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def test_a_damaged_newest_checkpoint_is_skipped_and_the_previous_one_resumed(scenes, tmp_path, capsys):
    import shutil

    _run(_cfg(scenes, tmp_path / "a", max_steps=8, stop_after=6))  # checkpoints at 2, 4, 6
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    newest = tmp_path / "a" / "checkpoints" / "step_00000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as after a storage crash or a partial copy
    capsys.readouterr()
    resumed = _run(_cfg(scenes, tmp_path / "a", max_steps=8, resume="auto"))
    said = capsys.readouterr().out
    warnings = [line for line in said.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "step_00000006" in warnings[0] and "model.safetensors" in warnings[0]
    assert "resumed from" in said and "step_00000004" in said
    direct = _run(_cfg(scenes, tmp_path / "b", max_steps=8, resume=str(tmp_path / "b" / "checkpoints" / "step_00000004")))
    assert resumed.step == direct.step == 8
    for k, v in _weights(direct).items():
        assert torch.equal(_weights(resumed)[k], v), f"{k} differs from a run resumed from step 4 directly"


def test_a_damaged_checkpoint_named_explicitly_or_all_damaged_is_an_error(scenes, tmp_path):
    _run(_cfg(scenes, tmp_path, max_steps=2))
    ckpt = find_checkpoint("latest", tmp_path / "checkpoints")
    (ckpt / "optimizer.bin").write_bytes(b"garbage")
    with pytest.raises(DamagedCheckpoint, match="optimizer.bin"):
        find_checkpoint(str(ckpt), tmp_path / "checkpoints")
    with pytest.raises(DamagedCheckpoint, match="every checkpoint .* is damaged"):
        find_checkpoint("auto", tmp_path / "checkpoints", warn=lambda message: None)  # never silently from scratch
