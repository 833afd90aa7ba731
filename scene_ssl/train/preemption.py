"""Checkpoint-and-stop on the signals schedulers send before they kill a job.

SLURM (``--signal=USR1@120``, or SIGTERM at the time limit and on ``scancel``) and
preemptible cloud machines warn a job with SIGTERM or SIGUSR1 before they kill it. Inside
:func:`preemption_signals` those signals only record themselves; the training loop then
finishes its step, writes a checkpoint and returns, so the same command with
``--resume auto`` goes on from there. The data-loader workers leave these signals to the
training process (:func:`scene_ssl.data.workers.init_worker`).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from ..data.workers import PREEMPTION_SIGNALS

__all__ = ["PREEMPTION_SIGNALS", "preemption_signals", "stop_requested"]


@contextmanager
def preemption_signals() -> Iterator[list[str]]:
    """Within the block, SIGTERM / SIGUSR1 append their name to the yielded list instead of
    ending the process; the previous handlers are restored afterwards. Outside the main
    thread (where Python cannot install handlers) nothing changes."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def record(signum, frame):
        received.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, record) for s in PREEMPTION_SIGNALS}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_requested(received: list[str], accelerator, step: int, every: int) -> bool:
    """Whether a preemption signal arrived. One process decides alone, every step; several
    agree at every ``every``-th step only (an all-reduce and a sync point), so that all stop
    at the same step."""
    if accelerator.num_processes == 1:
        return bool(received)
    if step % every:
        return False
    import torch

    flag = torch.tensor(float(bool(received)), device=accelerator.device)
    return bool(accelerator.reduce(flag, "sum") > 0)
