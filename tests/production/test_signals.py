"""The scheduler's warning signals through the launcher: SIGUSR1 and SIGTERM, sent to the
launcher alone or to every process of the job (what SLURM's step daemon does), with one
process or two, must each end in a checkpoint that ``--resume auto`` continues from to the
weights of an uninterrupted run, with no process left behind.

The README's SLURM recipe is the two-process row with :data:`SLURM_RECIPE_ENV` (torch's
elastic agent then forwards SIGUSR1 to the ranks and waits for them) and, for one process, no
launcher at all. Every other row is a launcher that dies of the signal or kills its child: the
ranks then checkpoint because the kernel tells them their launcher died (PR_SET_PDEATHSIG).
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from scene_ssl.train import list_checkpoints

from ..launching import ROOT, SLURM_RECIPE_ENV, accelerate_launch, job_env, marked, new_mark, nothing_left_behind

DRIVER = ROOT / "tests" / "train" / "fault_driver.py"
STEPS = 30
FLAGS = ["--backbone", "test_resnet", "--image-size", "24", "--batch-size", "8", "--queue-size", "32", "--dim", "16",
         "--hidden-dim", "32", "--topk", "4", "--max-steps", str(STEPS), "--save-every", "0", "--log-every", "1",
         "--probe-data", "none", "--export", "false", "--channels-last", "false", "--num-workers", "1"]

#: name -> (how the job is started, extra environment)
LAUNCHES = {
    "accelerate launch, 1 process": (accelerate_launch(1), {}),
    "accelerate launch, 2 processes (README: PET_SIGNALS_TO_HANDLE)": (None, SLURM_RECIPE_ENV),
    "accelerate launch, 2 processes, no PET_SIGNALS_TO_HANDLE": (None, {}),
    "python, 1 process (README: no launcher)": ([sys.executable], {}),
}


def _command(launch: str) -> tuple[list[str], dict[str, str], int]:
    prefix, env = LAUNCHES[launch]
    processes = 2 if "2 processes" in launch else 1
    return (prefix or accelerate_launch(2)), env, processes


def _start(launch: str, out, data, *extra: str) -> tuple[subprocess.Popen, str, int]:
    prefix, env, processes = _command(launch)
    mark = new_mark()
    cmd = [*prefix, str(DRIVER), "slow", str(out), "--data", f"coco:{data}", *FLAGS, *extra]
    # a session of its own: the launcher leads a process group, as under a scheduler
    proc = subprocess.Popen(cmd, env=job_env(out.parent, mark, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, mark, processes


def _finish(proc: subprocess.Popen, mark: str, timeout: float = 120) -> str:
    output, _ = proc.communicate(timeout=timeout)
    nothing_left_behind(mark, grace=20)
    return output


def _weights(out, processes: int) -> list[dict]:
    return [load_file(str(out / f"final_rank{r}.safetensors")) for r in range(processes)]


@pytest.fixture(scope="module")
def uninterrupted(scenes, tmp_path_factory):
    """The final weights of an uninterrupted run, by process count."""
    found = {}
    for processes, launch in ((1, "accelerate launch, 1 process"),
                              (2, "accelerate launch, 2 processes (README: PET_SIGNALS_TO_HANDLE)")):
        out = tmp_path_factory.mktemp("straight") / "out"
        proc, mark, _ = _start(launch, out, scenes)
        output = _finish(proc, mark, timeout=180)
        assert proc.returncode == 0, output[-3000:]
        found[processes] = _weights(out, processes)[0]
    return found


def _wait_for_step(out, step: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= step:
            return
        assert proc.poll() is None, "the run ended before it was signalled"
        time.sleep(0.05)
    raise AssertionError("the run did not reach the step")


CASES = [(launch, sig, target) for launch in list(LAUNCHES)[:2] for sig in ("SIGUSR1", "SIGTERM")
         for target in ("launcher", "job")]
CASES += [("accelerate launch, 2 processes, no PET_SIGNALS_TO_HANDLE", "SIGUSR1", "launcher"),
          ("python, 1 process (README: no launcher)", "SIGUSR1", "job")]


@pytest.mark.parametrize("launch,sig,target", CASES)
def test_a_signal_ends_in_a_checkpoint_that_resume_auto_continues(launch, sig, target, scenes, uninterrupted,
                                                                  tmp_path):
    out = tmp_path / "out"
    proc, mark, processes = _start(launch, out, scenes)
    _wait_for_step(out, 3, proc)
    pids = [proc.pid] if target == "launcher" else marked(mark)  # "job": every process, as SLURM signals a step
    for pid in pids:
        try:
            os.kill(pid, getattr(signal, sig))
        except ProcessLookupError:
            pass
    output = _finish(proc, mark)
    saved = list_checkpoints(out / "checkpoints")
    assert saved, f"no checkpoint (launcher exit {proc.returncode}):\n{output[-3000:]}"
    step = int(saved[-1].name.removeprefix("step_"))
    assert 3 <= step < STEPS and "--resume auto goes on" in output, output[-3000:]
    resumed = subprocess.run([*_command(launch)[0], str(DRIVER), "none", str(out), "--data", f"coco:{scenes}", *FLAGS,
                              "--resume", "auto"], env=job_env(tmp_path, new_mark(), **_command(launch)[1]),
                             capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0 and f"at step {step}" in resumed.stdout, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    final = _weights(out, processes)
    for k, v in uninterrupted[processes].items():
        assert all(torch.equal(w[k], v) for w in final), f"{k} differs from the uninterrupted run"
    print(f"| {launch} | {sig} | {target} | exit {proc.returncode} | checkpoint at step {step} | resumed to the "
          "uninterrupted weights |")
