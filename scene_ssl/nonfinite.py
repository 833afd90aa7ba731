"""A loss that became NaN or infinite stops the run, on every process at once.

Each step adds its loss to a flag on the device (no host sync); the flag is read only at the
steps where every process checks (log and checkpoint steps), summed over the processes
first, so that all of them raise together: one that stopped alone would leave the others
waiting in their next collective until the launcher's timeout.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

__all__ = ["NonFiniteLossError", "NonFiniteWatch"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint written before it is intact."""


class NonFiniteWatch:
    """Remember whether any loss since the start was non-finite; :meth:`check` raises on
    every process when one was, on any process.

    Example:
        >>> watch = NonFiniteWatch(torch.device("cpu"))
        >>> watch.add(torch.tensor(1.0)); watch.check(None, "step 1", None)
        >>> watch.add(torch.tensor(float("nan"))); watch.check(None, "step 2", None)
        Traceback (most recent call last):
        ...
        scene_ssl.nonfinite.NonFiniteLossError: non-finite loss at or before step 2 (on some process); stopping. ...
    """

    def __init__(self, device: torch.device) -> None:
        self.flag = torch.zeros((), dtype=torch.bool, device=device)

    def add(self, loss: Tensor) -> None:
        self.flag |= ~torch.isfinite(loss.detach()).all()

    def check(self, accelerator, where: str, last_checkpoint: Path | None) -> None:
        """Raise :class:`NonFiniteLossError` on every process if any saw a non-finite loss.
        Every process must call it at the same steps (``accelerator`` None: one process)."""
        bad = self.flag.float()
        if accelerator is not None and accelerator.num_processes > 1:
            bad = accelerator.reduce(bad, "sum")
        if bad.item() > 0:  # CPU-GPU sync point: only where every process checks
            raise NonFiniteLossError(
                f"non-finite loss at or before {where} (on some process); stopping. The last good checkpoint is "
                f"{last_checkpoint or 'none (no checkpoint was written yet)'}; lower the learning rate or use bf16 "
                "instead of fp16")
