"""Run a test function in N CPU processes joined by a gloo process group.

Like ``accelerate.debug_launcher`` (fork + gloo), but on a free port so that tests never
collide with each other or with a leftover rendezvous on 29500.
"""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn, world_size: int, port: int, args: tuple) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size), GLOO_SOCKET_IFNAME="lo",
    )
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_distributed(fn, *args, world_size: int = 2, start_method: str = "fork") -> None:
    """Call ``fn(rank, world_size, *args)`` in ``world_size`` processes; re-raise failures.

    ``start_method="spawn"`` (fresh interpreters, ``fn`` importable) where the test process has
    computed with torch's thread pool before: OpenMP does not survive a fork (a child hangs)."""
    mp.start_processes(_entry, args=(fn, world_size, _free_port(), args), nprocs=world_size, start_method=start_method)
