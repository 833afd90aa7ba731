"""Which process this is among a job's processes, asked one way everywhere.

The launcher (``accelerate launch``, ``torchrun``, SLURM through them) says it in the
environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``), before any process group exists and
after it is gone (an export or a probe after ``end_training``), so these read that; inside a
run ``accelerator.process_index`` agrees with them (use these). :func:`rank_and_world_size`
asks the running process group instead, for collectives. :func:`check_launch` refuses a launch
whose processes could not join one group, which would otherwise run as N independent
copies writing one output folder.
"""
from __future__ import annotations

import os

__all__ = ["process_index", "is_main_process", "is_local_main_process", "launched_processes", "rank_and_world_size",
           "check_launch"]


def process_index() -> int:
    """This process's rank in the job (0 when not launched as several)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """The job's first process: the one that writes shared files and prints."""
    return process_index() == 0


def is_local_main_process() -> bool:
    """The first process on this machine: the one that shows progress bars."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the running process group, ``(0, 1)`` without one: who takes
    which share of a collective (a gather, a sharded evaluation)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_launch(accelerator):
    """``accelerator``, unless the launcher started more processes than joined its group.

    Example: ``accelerate launch --multi_gpu --num_processes 2`` on a machine without CUDA
    and without ``ACCELERATE_USE_CPU=1`` starts two processes that each see one.
    """
    if accelerator.process_index != process_index():
        raise ValueError(f"RANK={os.environ.get('RANK')} in the environment, but this is process {accelerator.process_index} "
                         "of its group: a RANK left over from another job? (unset it)")
    launched = launched_processes()
    if launched > 1 and accelerator.num_processes != launched:
        raise ValueError(
            f"the launcher started {launched} processes but they did not join one process group "
            f"({accelerator.num_processes} each, on {accelerator.device}); refusing to run {launched} independent copies "
            "on one output folder. Without CUDA devices set ACCELERATE_USE_CPU=1 (gloo on CPUs)")
    return accelerator
