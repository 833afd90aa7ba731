"""Atomic checkpoints on top of ``Accelerator.save_state`` / ``load_state``.

A checkpoint is written into ``checkpoints/.tmp-step_XXXXXXXX`` by every process and only
then renamed to ``checkpoints/step_XXXXXXXX`` by the main process: a crash mid-save leaves
a ``.tmp-`` folder that nothing ever loads, and the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

__all__ = ["save_checkpoint", "find_checkpoint", "list_checkpoints", "TrainState"]

_NAME = re.compile(r"^step_(\d{8})$")


class TrainState:
    """The loop's counters, registered with Accelerate so that they travel in checkpoints."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name))


def find_checkpoint(resume: str, folder: str | os.PathLike) -> Path | None:
    """The checkpoint ``--resume`` asks for in ``folder``.

    ``"auto"``: the newest complete checkpoint, or None when there is none (a first launch
    and a re-submitted one are the same command); ``"latest"``: the newest, and an error
    when there is none; anything else: that checkpoint folder.
    """
    if resume in ("auto", "latest"):
        found = list_checkpoints(folder)
        if found:
            return found[-1]
        if resume == "auto":
            return None
        raise FileNotFoundError(f"--resume latest: no checkpoint in {folder} (--resume auto starts fresh when there is none)")
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"--resume {resume}: not a complete checkpoint (no trainer_state.json)")
    return path


def save_checkpoint(accelerator: Accelerator, folder: str | os.PathLike, step: int, keep: int = 2,
                    extra: dict | None = None) -> Path:
    """Save the full training state (model incl. queues, optimizer, RNG, counters) atomically."""
    folder = Path(folder)
    final = folder / f"step_{step:08d}"
    tmp = folder / f".tmp-step_{step:08d}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **(extra or {})}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
