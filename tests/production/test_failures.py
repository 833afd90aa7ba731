"""A multi-process run that fails fails whole: a non-finite loss on one rank stops every rank
with one line, and a launch whose processes cannot form a group is refused before it starts."""
import subprocess
import time

from scene_ssl.train import list_checkpoints

from ..launching import ROOT, accelerate_launch, job_env, new_mark, nothing_left_behind

DRIVER = ROOT / "tests" / "train" / "fault_driver.py"
FLAGS = ["--backbone", "test_resnet", "--image-size", "24", "--batch-size", "8", "--queue-size", "32", "--dim", "16",
         "--hidden-dim", "32", "--topk", "4", "--max-steps", "12", "--log-every", "2", "--save-every", "2",
         "--probe-data", "none", "--export", "false", "--channels-last", "false", "--num-workers", "1"]


def test_a_nan_on_one_of_two_ranks_ends_both_with_one_line(scenes, tmp_path):
    out, mark = tmp_path / "out", new_mark()
    start = time.monotonic()
    proc = subprocess.run([*accelerate_launch(2), str(DRIVER), "nan_rank1", str(out), "--data", f"coco:{scenes}", *FLAGS],
                          env=job_env(tmp_path, mark), capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - start
    nothing_left_behind(mark)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and wall < 60, proc.stderr[-3000:]
    # rank 1's third forward (step 3) is NaN: both stop at the next check (step 4), before its checkpoint
    assert len(errors) == 1 and "non-finite loss at or before step 4 (on some process)" in errors[0], proc.stderr[-3000:]
    assert "step_00000002" in errors[0] and [p.name for p in list_checkpoints(out / "checkpoints")] == ["step_00000002"]
    assert "scene_ssl/train/loop.py" not in proc.stderr  # one line, not a traceback through the loop


def test_processes_that_cannot_form_a_group_are_refused_in_one_line(scenes, tmp_path):
    # no CUDA and no ACCELERATE_USE_CPU=1: each process would train alone on one output folder
    env = job_env(tmp_path, new_mark())
    env.pop("ACCELERATE_USE_CPU")
    proc = subprocess.run([*accelerate_launch(2), str(DRIVER), "none", str(tmp_path / "out"), "--data", f"coco:{scenes}",
                           *FLAGS], env=env, capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-3000:]
    assert "did not join one process group" in errors[0] and "ACCELERATE_USE_CPU=1" in errors[0]
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "config.yaml").exists()
