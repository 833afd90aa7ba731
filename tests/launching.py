"""Run scene_ssl the way users do, in processes of its own: through ``accelerate launch`` (one
process, or several CPU ranks joined by gloo), each job marked in its environment so that a
test can find every process it started, signal them, and check that none was left behind."""
from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: what the README's SLURM recipe exports so that torch's elastic agent (``accelerate launch
#: --multi_gpu``) forwards SLURM's warning signal to every rank and waits for their checkpoint
SLURM_RECIPE_ENV = {"PET_SIGNALS_TO_HANDLE": "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "300"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(processes: int, mixed_precision: str = "no") -> list[str]:
    """``accelerate launch`` for ``processes`` CPU processes. Several: ``--multi_gpu`` with
    ``ACCELERATE_USE_CPU=1`` (see :func:`job_env`), real gloo ranks (``--cpu --num_processes 2``
    would silently run one); one: Accelerate's one-process launcher."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision",
           mixed_precision, "--dynamo_backend", "no"]
    if processes > 1:
        cmd += ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", str(free_port())]
    else:
        cmd += ["--num_processes", "1"]
    return cmd


def new_mark() -> str:
    return f"SCENE_SSL_JOB_{uuid.uuid4().hex}"


def job_env(tmp: Path, mark: str, **extra: str) -> dict[str, str]:
    """The environment of a launched job: CPU ranks over loopback, one compute thread each,
    a private data cache, and ``mark`` (found in every process the job starts)."""
    return {**os.environ, mark: "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
            "PYTHONPATH": str(ROOT), "SCENE_SSL_CACHE": str(tmp / "cache"), **extra}


def marked(mark: str) -> list[int]:
    """Pids of live processes that carry ``mark`` in their environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return found


def nothing_left_behind(mark: str, grace: float = 10.0) -> None:
    deadline = time.monotonic() + grace
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not marked(mark), f"processes left running: {marked(mark)}"
