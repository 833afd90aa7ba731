"""The recipes end to end, in two CPU processes through the real ``accelerate launch`` CLI."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scene_ssl.data import make_scenes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], tmp_path: Path, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "SCENE_SSL_CACHE": str(tmp_path / "cache"),
           "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(ROOT)}
    # note: `accelerate launch --cpu --num_processes 2` silently runs ONE process; --multi_gpu
    # with ACCELERATE_USE_CPU=1 gives real gloo ranks on the CPU
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_port()), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("data") / "s", num_classes=4, num_train=64, num_val=16, image_size=(48, 36))


COMMON = ["--backbone", "test_resnet", "--num-workers", "0", "--max-steps", "3", "--log-every", "1",
          "--save-every", "0", "--export", "false", "--probe-data", "none", "--channels-last", "false"]

RECIPES = {
    "pretrain_mls": ["--image-size", "24", "--batch-size", "8", "--queue-size", "64", "--dim", "16", "--hidden-dim", "32",
                     "--topk", "4"],
    "pretrain_bam": ["--image-size", "16", "--batch-size", "4", "--proj-dim", "16", "--proj-hidden-dim", "16",
                     "--pred-hidden-dim", "8"],
    "pretrain_densecl": ["--image-size", "64", "--batch-size", "4", "--queue-size", "32", "--dim", "8", "--hidden-dim",
                         "16"],
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_two_processes_end_with_identical_weights_and_queues(recipe, scenes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = launch([str(HERE / "run_recipe.py"), recipe, str(out), "--data", f"coco:{scenes}", "--output-dir", str(out),
                   *COMMON, *RECIPES[recipe]], tmp_path)
    assert "2 process(es)" in proc.stdout + proc.stderr
    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between the ranks"
    if recipe == "pretrain_mls":
        assert int(r0["queue.ptr"]) == 3 * 8 * 2 % 64  # both ranks enqueued both ranks' keys
        assert int(r0["queue_g.ptr"]) == int(r0["queue.ptr"])
    if recipe == "pretrain_densecl":  # shuffle-BN across the ranks, both queues filled alike
        assert int(r0["queue.ptr"]) == int(r0["queue_dense.ptr"]) == 3 * 4 * 2 % 32
        assert torch.equal(r0["queue.index"], r0["queue_dense.index"])
    assert (out / "checkpoints").is_dir() and (out / "config.yaml").is_file()
