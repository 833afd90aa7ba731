"""Atomic, checkable checkpoints on top of ``Accelerator.save_state`` / ``load_state``.

A checkpoint is written into ``checkpoints/.tmp-step_XXXXXXXX`` by every process, after
checking that the disk has room for one more (the size of the last one); the main process
then flushes its files to disk, writes ``manifest.json`` (every file's size and CRC-32,
see :mod:`scene_ssl.durable`) and only then renames it to ``checkpoints/step_XXXXXXXX``. A
crash or a full disk mid-save leaves a ``.tmp-`` folder that nothing loads and the previous
checkpoint intact; ``--resume auto`` / ``latest`` skip a damaged newest checkpoint (with a
one-line warning) and take the newest intact one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

from accelerate import Accelerator

from ..processes import is_main_process
from ..durable import (MANIFEST, check_manifest, disk_full_error, folder_size, require_free_space, sync_entries,
                       sync_folder, write_manifest)

__all__ = ["save_checkpoint", "find_checkpoint", "list_checkpoints", "TrainState", "DamagedCheckpoint"]

_NAME = re.compile(r"^step_(\d{8})$")


class DamagedCheckpoint(ValueError):
    """A checkpoint that was named explicitly, or every checkpoint there is, fails its manifest."""


class TrainState:
    """The loop's counters, registered with Accelerate so that they travel in checkpoints."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint folders (renamed into place) in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name))


def _problem(path: Path) -> str | None:
    """What is wrong with a checkpoint folder, or None. One written before manifests existed
    (it has its trainer_state.json) is taken as it is."""
    if not (path / "trainer_state.json").is_file():
        return "no trainer_state.json (not a complete checkpoint)"
    return check_manifest(path) if (path / MANIFEST).is_file() else None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def find_checkpoint(resume: str, folder: str | os.PathLike, warn: Callable[[str], None] = _stderr) -> Path | None:
    """The checkpoint ``--resume`` asks for in ``folder``.

    ``"auto"``: the newest intact checkpoint, or None when there is none at all (a first
    launch and a re-submitted one are the same command); ``"latest"``: the same, and an error
    when there is none. A damaged newer one is skipped with a one-line ``warn``; when every
    checkpoint is damaged the run stops (it never starts from scratch silently). Anything
    else: that checkpoint folder, which must be intact.
    """
    if resume in ("auto", "latest"):
        found = list_checkpoints(folder)
        for path in reversed(found):
            problem = _problem(path)
            if problem is None:
                return path
            warn(f"warning: skipping the damaged checkpoint {path}: {problem}")
        if found:
            raise DamagedCheckpoint(f"--resume {resume}: every checkpoint in {folder} is damaged (see the warnings); "
                                    "not starting from scratch over them: move them away to start afresh")
        if resume == "auto":
            return None
        raise FileNotFoundError(f"--resume latest: no checkpoint in {folder} (--resume auto starts fresh when there is none)")
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume {resume}: no such checkpoint folder")
    problem = _problem(path)
    if problem is not None:
        raise DamagedCheckpoint(f"--resume {resume}: the checkpoint is damaged: {problem}")
    return path


def save_checkpoint(accelerator: Accelerator, folder: str | os.PathLike, step: int, keep: int = 2,
                    extra: dict | None = None, size_hint: Callable[[], int] | None = None) -> Path:
    """Save the full training state (model incl. queues, optimizer, RNG, counters) atomically.

    Before anything is written, every process checks that ``folder``'s disk has room for a
    checkpoint as large as the newest one (or ``size_hint()`` bytes when there is none yet);
    a full disk, then or while writing, is an :class:`~scene_ssl.durable.InsufficientDiskSpace`
    error naming the folder and the space needed, with the previous checkpoint intact.
    """
    folder = Path(folder)
    final = folder / f"step_{step:08d}"
    tmp = folder / f".tmp-step_{step:08d}"
    previous = list_checkpoints(folder)
    needed = folder_size(previous[-1]) if previous else (size_hint() if size_hint else 0)
    intact = f"the previous checkpoint {previous[-1].name}" if previous else ""
    require_free_space(folder, needed, f"checkpoint {final.name}", intact=intact)
    if is_main_process():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        accelerator.wait_for_everyone()
        if is_main_process():
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **(extra or {})}, indent=1))
            sync_folder(tmp)  # the data is on disk before its name says it is complete
            write_manifest(tmp)
    except Exception as error:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_full_error(error, folder, f"checkpoint {final.name}", needed, intact=intact)
        if full is not None:
            raise full from None
        raise
    if is_main_process():
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        sync_entries(folder)
        for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
