"""CPU runs compute with the cores their data workers leave free, whatever a launcher imposed,
and with exactly the user's number when the user chose one."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scene_ssl.data import workers
from scene_ssl.data.workers import available_cpus, compute_threads

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def machine(monkeypatch):
    """A 4-CPU machine with no thread setting of its own."""
    monkeypatch.setattr(workers, "available_cpus", lambda: 4)
    for key in ("OMP_NUM_THREADS", "ACCELERATE_DYNAMO_BACKEND", "TORCHELASTIC_RUN_ID", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_a_launchers_single_thread_is_replaced_by_the_free_cores(machine):
    machine.setenv("OMP_NUM_THREADS", "1")
    machine.setenv("ACCELERATE_DYNAMO_BACKEND", "NO")  # what accelerate launch sets beside it
    assert compute_threads(None, busy_workers=1) == 3
    assert compute_threads(None, busy_workers=8) == 1  # at least one
    machine.setenv("LOCAL_WORLD_SIZE", "2")  # two training processes share the machine
    assert compute_threads(None, busy_workers=0) == 2


def test_the_users_choice_is_kept(machine):
    machine.setenv("OMP_NUM_THREADS", "1")  # set by the user: no launcher marks the process
    assert compute_threads(None, busy_workers=0) is None  # torch keeps the user's 1
    machine.setenv("ACCELERATE_DYNAMO_BACKEND", "NO")
    assert compute_threads(2, busy_workers=3) == 2  # --threads wins over everything
    machine.setenv("OMP_NUM_THREADS", "3")  # a launcher passing the user's own number through
    assert compute_threads(None, busy_workers=0) is None
    with pytest.raises(ValueError, match="threads must be >= 1"):
        compute_threads(0, busy_workers=0)
    from scene_ssl.config import load_config
    from scene_ssl.detection.config import DetectionConfig
    from scene_ssl.models import MLSConfig
    from scene_ssl.probe import LinearProbeConfig

    for cls in (MLSConfig, DetectionConfig, LinearProbeConfig):  # refused when the config is read, on any device
        with pytest.raises(ValueError, match="threads must be >= 1"):
            load_config(cls, None, {"threads": 0})


def _header_threads(tmp_path, *flags):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # accelerate launch sets it to 1 itself
    env.update(SCENE_SSL_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "recipes" / "pretrain_mls.py"),
           "--data", f"coco:{tmp_path / 'scenes'}", "--backbone", "test_resnet", "--image-size", "16", "--batch-size", "8",
           "--queue-size", "16", "--dim", "8", "--hidden-dim", "16", "--topk", "2", "--max-steps", "1", "--num-workers", "0",
           "--probe-data", "none", "--export", "false", "--output-dir", str(tmp_path / "out"), *flags]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(re.search(r"cpu \((\d+) CPU thread", proc.stdout).group(1))


def test_a_run_under_accelerate_launch_uses_every_free_core(tmp_path):
    from scene_ssl.data import make_scenes

    make_scenes(tmp_path / "scenes", num_classes=2, num_train=16, num_val=4, image_size=(32, 24))
    assert _header_threads(tmp_path) == available_cpus()  # > 1 wherever the machine has more than one core
    assert _header_threads(tmp_path, "--threads", "1") == 1
