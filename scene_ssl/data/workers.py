"""The CPU side of a run: how many data-loader workers and compute threads it gets, and that
its workers end with the training process.

Threads: a run on the CPU computes with the cores its data workers leave free (at least one),
whatever a launcher imposed: ``accelerate launch`` and ``torchrun`` set ``OMP_NUM_THREADS=1``
for every process they start, which leaves all but one core idle on a CPU machine. A number
the user chose (``--threads``, or ``OMP_NUM_THREADS`` set outside a launcher) is kept as is.

Workers leave SIGTERM / SIGUSR1 to the training process: a scheduler (SLURM at the time limit
or on ``scancel``, a preemptible cloud) signals every process of the job, and a worker that
died of it would break the epoch before the training process has written its checkpoint.
But a worker must never outlive the training process, however that ends:

- while the training process lives, a worker ignores the preemption signals;
- once it is exiting (after an exception too: Python's ``atexit`` runs), a SIGTERM — which is
  how ``multiprocessing`` ends daemonic workers at exit — ends the worker at once. Without
  this, the exiting process waits forever for workers that ignore the signal it sends;
- if the training process dies without exiting (SIGKILL, a crash), the kernel ends the
  workers with it (``PR_SET_PDEATHSIG`` on Linux).
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import multiprocessing
import os
import signal
import sys

__all__ = ["DEFAULT_WORKERS", "WORKERS_HELP", "available_cpus", "worker_count", "init_worker", "PREEMPTION_SIGNALS", "compute_threads", "use_cpu_threads",
           "THREADS_HELP", "check_threads", "started_by_launcher"]

#: the ``--threads`` help of every recipe config
#: data-loader processes per training process, every recipe's default (capped at the CPUs available)
DEFAULT_WORKERS = 8
WORKERS_HELP = "data-loader processes per process (capped at the CPUs available)"

THREADS_HELP = ("CPU runs: compute threads (default: the cores the data workers leave free, at least one; "
                "a launcher's OMP_NUM_THREADS=1 is not taken as a choice)")


def check_threads(threads: int | None) -> None:
    """Refuse ``--threads`` below 1 (None: automatic) when the config is read, on any device."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or none: automatic), got {threads}")

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

#: set in the training process when it starts to exit; its workers share the byte (handed to
#: them by :data:`init_worker`, so that spawned workers share it as well as forked ones)
_PARENT_EXITING = multiprocessing.Value("b", 0, lock=False)
_exiting = _PARENT_EXITING  # in a worker: the training process's byte


@atexit.register  # registered after multiprocessing's own exit hook, so it runs before it
def _parent_exiting() -> None:
    _PARENT_EXITING.value = 1


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(requested: int) -> int:
    """``requested`` workers, capped at the CPUs available: more processes than CPUs only
    add switching and memory.

    Example:
        >>> worker_count(0), worker_count(10_000) == available_cpus()
        (0, True)
    """
    return max(0, min(int(requested), available_cpus()))


def started_by_launcher() -> bool:
    """Whether ``accelerate launch`` or ``torchrun`` started this process (both mark the
    processes they start)."""
    return any(k in os.environ for k in ("ACCELERATE_DYNAMO_BACKEND", "TORCHELASTIC_RUN_ID"))


def _launcher_set_threads() -> bool:
    """Whether ``OMP_NUM_THREADS=1`` is a launcher's default rather than the user's choice."""
    return started_by_launcher() and os.environ.get("OMP_NUM_THREADS") == "1"


def compute_threads(requested: int | None, busy_workers: int) -> int | None:
    """Intra-op threads for a CPU run: ``requested`` when given; None (leave torch's choice)
    when the user set ``OMP_NUM_THREADS``; else the CPUs of this process's share of the
    machine (``LOCAL_WORLD_SIZE`` processes share it) minus its data workers, at least one.

    Example:
        >>> compute_threads(3, busy_workers=8)
        3
    """
    if requested is not None:
        check_threads(requested)
        return int(requested)
    if "OMP_NUM_THREADS" in os.environ and not _launcher_set_threads():
        return None
    share = available_cpus() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, share - int(busy_workers))


def use_cpu_threads(requested: int | None, busy_workers: int, device) -> int:
    """On a CPU ``device``, set torch's intra-op threads to :func:`compute_threads`; return the
    number of threads torch computes with."""
    import torch

    if getattr(device, "type", device) == "cpu":
        threads = compute_threads(requested, busy_workers)
        if threads is not None:
            torch.set_num_threads(threads)
    return torch.get_num_threads()


def _on_sigterm(signum, frame) -> None:
    if _exiting.value:  # the training process is ending and ends us: go now
        os._exit(0)


def _end_with_parent() -> None:
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above: nobody to work for
        os._exit(0)


def _init_worker(worker_id: int, exiting) -> None:
    global _exiting
    _exiting = exiting
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    _end_with_parent()


#: DataLoader ``worker_init_fn`` of every loader in scene_ssl (see the module docstring); it
#: carries the training process's exit flag to the workers however they are started
init_worker = functools.partial(_init_worker, exiting=_PARENT_EXITING)
