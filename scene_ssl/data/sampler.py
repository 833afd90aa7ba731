"""Randomness as a pure function of its keys: seeded generators and an epoch shuffle."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["EpochShuffleSampler", "seeded_generator", "SharedEpoch"]


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer ``keys`` (e.g. seed, epoch, index) through
    NumPy's ``SeedSequence``: well-mixed, so nearby keys give unrelated streams.

    Example:
        >>> a = torch.rand(2, generator=seeded_generator(0, 1, 2))
        >>> torch.equal(a, torch.rand(2, generator=seeded_generator(0, 1, 2)))
        True
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


class EpochShuffleSampler(Sampler[int]):
    """``torch.randperm(n)`` from :func:`seeded_generator` ``(seed, epoch)``.

    The same on every process (Accelerate then shards its batches) and after a resume:
    nothing depends on the global RNG or on how many batches were drawn before.

    Example:
        >>> s = EpochShuffleSampler(5, seed=1)
        >>> first = list(s); s.set_epoch(1); second = list(s); s.set_epoch(0)
        >>> sorted(first) == list(range(5)), first == list(s), first != second
        (True, True, True)
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=seeded_generator(self.seed, self.epoch)).tolist())


class SharedEpoch:
    """The epoch a dataset draws its randomness for, in shared memory: persistent data-loader
    workers keep their copy of the dataset across epochs, and see :meth:`set_epoch` through it.
    A dataset inherits it and calls ``super().__init__()``.

    Example:
        >>> epoch = SharedEpoch(); epoch.set_epoch(3); epoch.epoch
        3
    """

    def __init__(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.long).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))
