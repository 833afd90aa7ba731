"""Checkpoint-and-stop on the signals schedulers send before they kill a job.

SLURM (``--signal=USR1@120``, or SIGTERM at the time limit and on ``scancel``) and
preemptible cloud machines warn a job with SIGTERM or SIGUSR1 before they kill it. Inside
:func:`preemption_signals` those signals only record themselves; the training loop then
finishes its step, writes a checkpoint and returns, so the same command with
``--resume auto`` goes on from there. The data-loader workers leave these signals to the
training process (:func:`scene_ssl.data.workers.init_worker`).

The launcher in between (``accelerate launch``, ``torchrun``) is the weak link: a signal it
does not handle ends it at once (``accelerate launch``'s one-process launcher on SIGUSR1,
torch's elastic agent on any signal outside ``PET_SIGNALS_TO_HANDLE``), which leaves its
training processes orphaned, or with a stderr pipe nobody reads. So a process started by a
launcher asks the kernel for a SIGTERM when its launcher dies (``PR_SET_PDEATHSIG``): it
then checkpoints and stops like on any preemption signal, its stderr moved onto its stdout
when the launcher was the pipe's reader. No rank outlives its launcher.
"""
from __future__ import annotations

import ctypes
import os
import signal
import stat
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from ..data.workers import PREEMPTION_SIGNALS, started_by_launcher

__all__ = ["PREEMPTION_SIGNALS", "preemption_signals", "StopAgreement"]


def _end_with_launcher() -> int | None:
    """Ask for a SIGTERM when the launcher that started this process dies (Linux); return
    the launcher's pid (None when not started by one, or not on Linux)."""
    if not (sys.platform.startswith("linux") and started_by_launcher()):
        return None
    launcher = os.getppid()
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return launcher


def _stderr_onto_stdout() -> None:
    """The launcher that read our stderr pipe is gone: a write there would raise
    BrokenPipeError and lose the checkpoint. Send stderr where stdout goes instead."""
    try:
        if stat.S_ISFIFO(os.fstat(2).st_mode):
            os.dup2(1, 2)
    except OSError:
        pass


@contextmanager
def preemption_signals() -> Iterator[list[str]]:
    """Within the block, SIGTERM / SIGUSR1 append their name to the yielded list instead of
    ending the process (the death of the launcher arrives as SIGTERM); the previous handlers
    are restored afterwards. Outside the main thread (where Python cannot install handlers)
    nothing changes."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    launcher = _end_with_launcher()

    def record(signum, frame):
        if launcher is not None and os.getppid() != launcher:
            _stderr_onto_stdout()
            received.append(f"{signal.Signals(signum).name} (the launcher ended)")
        else:
            received.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, record) for s in PREEMPTION_SIGNALS}
    if launcher is not None and os.getppid() != launcher:  # it died before the kernel was asked to tell us
        record(signal.SIGTERM, None)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class StopAgreement:
    """Whether the run should stop after this step: a preemption signal arrived on any process.

    One process decides alone. Several must stop at the same step (each then takes part in
    the same checkpoint), within a step of the signal (a launcher waits a bounded time before
    it kills): every step starts an asynchronous all-reduce of this process's flag on a CPU
    (gloo) group and reads the one started at the step before. Every process reads the same
    sum at the same step; nothing waits on the accelerator, and the reduce of one step
    travels while the next one computes.

    Example:
        >>> agree = StopAgreement([], world_size=1)
        >>> agree()
        False
    """

    def __init__(self, received: list[str], world_size: int) -> None:
        self.received = received
        self._pending = None  # (work, flag) of the all-reduce started at the last step
        self._group = self._own_group = None
        if world_size > 1:
            import torch.distributed as dist

            if dist.get_backend() == "gloo":
                self._group = dist.group.WORLD
            else:  # NCCL: a CPU side group of our own, ended in close()
                self._group = self._own_group = dist.new_group(backend="gloo")

    def __call__(self) -> bool:
        if self._group is None:
            return bool(self.received)
        import torch
        import torch.distributed as dist

        decided = False
        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            decided = bool(flag.item() > 0)
        flag = torch.tensor([float(bool(self.received))])
        self._pending = (dist.all_reduce(flag, group=self._group, async_op=True), flag)
        return decided

    def close(self) -> None:
        """Wait for the last reduce (every process must have joined it before the group ends),
        and end the side group this agreement made."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None
        if self._own_group is not None:
            import torch.distributed as dist

            dist.destroy_process_group(self._own_group)
            self._own_group = self._group = None

    def who(self) -> str:
        """What stopped the run, for its last line."""
        return self.received[0] if self.received else "a signal on another process"
