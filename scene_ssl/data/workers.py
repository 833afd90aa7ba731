"""How many data-loader worker processes a loader gets."""
from __future__ import annotations

import os

__all__ = ["available_cpus", "worker_count"]


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
