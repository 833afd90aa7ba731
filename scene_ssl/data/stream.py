"""Streaming SSL data: views of samples read shard by shard, for data beyond one disk.

A :class:`StreamSource` is a list of shards with their sample counts (tar shards of a
``wds:`` spec, or the files of an ``hf:...?streaming=1`` dataset). :class:`ShardedViewStream`
splits them **by shard, then by worker**: the ``W`` data-loader workers of all processes
each own a fixed set of shards (balanced by sample count); each epoch a worker reads its
shards in an order shuffled by (seed, epoch, worker), through a shuffle buffer. Every
worker yields the same number of whole batches per epoch (the smallest worker's share),
so every process takes the same number of steps; with equally sized shards, a multiple
of ``W`` of them, no sample is dropped but each worker's last partial batch, and none is
seen twice within an epoch. A resumed run must keep the number of processes and workers.

Views come from the same sampler and seeding as :class:`~scene_ssl.data.ViewDataset`:
sample ``i`` (its position in the shard list) in epoch ``e`` draws its parameters from
``(seed, e, i)``. Unreadable samples are skipped and named in ``skipped``, the next sample
taking their place. Each batch carries its worker and how many samples that worker has
consumed; :class:`StreamState` keeps the latest per worker and travels in checkpoints, and
:meth:`ShardedViewStream.resume_at` fast-forwards every worker there without decoding, in
the same interleaving, so a resumed run sees the samples an uninterrupted one would.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..transforms.multiview import MultiViewTransform
from .decode import DecodeError
from .sampler import seeded_generator
from .shard_reader import DAMAGED_SHARD, count_shard, iterate_shard, read_index, shard_urls
from .views import MAX_CONSECUTIVE_FAILURES, decode_for_views, decode_side, worker_item

__all__ = ["StreamSource", "tar_source", "hub_stream_source", "ShardedViewStream", "StreamState"]

#: (name, image item for decode_image, {"image_id", "labels"}) of one sample
Sample = tuple[str, Any, dict]


@dataclasses.dataclass
class StreamSource:
    """Shards with their sample counts, and how to read one."""

    shards: list[Any]
    counts: list[int]
    class_names: list[str]
    read: Callable[[Any], Iterator[Sample]]
    spec: str

    def __len__(self) -> int:
        return sum(self.counts)


def _tar_samples(url: str) -> Iterator[Sample]:
    for key, parts in iterate_shard(url):
        meta = json.loads(parts["json"]) if "json" in parts else {}
        image = next((parts[e] for e in ("jpg", "jpeg", "png", "webp", "bmp") if e in parts), None)
        yield f"{url}:{key}", {"bytes": image, "path": key} if image is not None else None, meta


def tar_source(location: str) -> StreamSource:
    """The tar shards of a ``wds:`` location; counts from ``index.json`` or one header pass."""
    urls = shard_urls(location)
    index = read_index(urls)
    known = {s["name"]: s["count"] for s in index["shards"]} if index else {}
    counts = [known[u.rsplit("/", 1)[-1]] if u.rsplit("/", 1)[-1] in known else count_shard(u) for u in urls]
    return StreamSource(urls, counts, list(index.get("class_names", [])) if index else [], _tar_samples, f"wds:{location}")


def hub_stream_source(repo: str, split: str) -> StreamSource:
    """An HF ``datasets`` IterableDataset (``streaming=True``) split into its files (shards)."""
    import datasets

    stream = datasets.load_dataset(repo, split=split, streaming=True)
    if "image" not in (stream.column_names or []):
        raise ValueError(f"hf:{repo} has no 'image' column (columns: {stream.column_names})")
    stream = stream.cast_column("image", datasets.Image(decode=False))
    shards = [stream.shard(num_shards=stream.n_shards, index=i) for i in range(stream.n_shards)]
    counts = [sum(1 for _ in s.select_columns([c for c in s.column_names if c != "image"] or ["image"])) for s in shards]
    labels = stream.features.get("labels") if stream.features else None
    names = list(getattr(getattr(labels, "feature", labels), "names", []) or [])

    def read(shard) -> Iterator[Sample]:
        for i, row in enumerate(shard):
            yield f"hf:{repo}[{i}]", row["image"], {"image_id": row.get("image_id", i), "labels": row.get("labels") or []}

    return StreamSource(shards, counts, names, read, f"hf:{repo}?streaming=1")


class StreamState:
    """How far each global worker got in the epoch (samples consumed), for checkpoints.

    ``workers``: the data-loader workers of all processes together. A checkpoint's positions
    only mean something for the same number: loading one saved with another is refused."""

    def __init__(self, workers: int = 0) -> None:
        self.positions: dict[int, int] = {}
        self.workers = int(workers)

    def update(self, batch: dict) -> None:
        worker, position = batch["stream"]
        self.positions[int(worker)] = int(position)

    def reset(self) -> None:
        self.positions = {}

    def state_dict(self) -> dict:
        return {"positions": {str(k): v for k, v in self.positions.items()}, "workers": self.workers}

    def load_state_dict(self, state: dict) -> None:
        saved = int(state.get("workers", 0))
        if saved and self.workers and saved != self.workers:
            raise ValueError(f"the checkpoint's stream was read by {saved} data-loader workers in all (processes x "
                             f"workers), this run has {self.workers}: resume a streamed run with the same layout")
        self.positions = {int(k): int(v) for k, v in state["positions"].items()}


def _balanced(counts: list[int], workers: int) -> list[list[int]]:
    """Shards per worker, largest first to the least loaded worker: shares as equal as shards allow.

    Example:
        >>> _balanced([10, 10, 10, 10, 3], 2)
        [[0, 2, 4], [1, 3]]
    """
    loads, owned = [0] * workers, [[] for _ in range(workers)]
    for shard in sorted(range(len(counts)), key=lambda i: (-counts[i], i)):
        w = min(range(workers), key=lambda j: (loads[j], j))
        owned[w].append(shard)
        loads[w] += counts[shard]
    return [sorted(o) for o in owned]


class ShardedViewStream(IterableDataset):
    """Multi-view samples of a :class:`StreamSource`, split by shard across processes and
    data-loader workers; see the module docstring. Items are those of
    :class:`~scene_ssl.data.ViewDataset` plus ``stream = (global worker, samples consumed)``.

    Args:
        source: the shards. transform: a :class:`~scene_ssl.transforms.MultiViewTransform`.
        batch_size: per process; every worker yields whole batches. num_workers: the data
            loader's. rank / world_size: this process and how many there are.
        shuffle_buffer: samples held to shuffle within a worker's stream.
    """

    def __init__(self, source: StreamSource, transform: MultiViewTransform, *, batch_size: int, num_workers: int,
                 rank: int = 0, world_size: int = 1, seed: int = 0, shuffle_buffer: int = 1000,
                 render: str = "cpu", max_side: int | None = None) -> None:
        if render not in ("cpu", "process"):
            raise ValueError(f"render must be 'cpu' or 'process' (streamed data is decoded in the workers), got {render!r}")
        self.source, self.transform = source, transform
        self.batch_size, self.num_workers = int(batch_size), max(1, int(num_workers))
        self.rank, self.world_size, self.seed = rank, world_size, int(seed)
        self.shuffle_buffer, self.render, self.max_side = max(1, int(shuffle_buffer)), render, decode_side(transform, max_side)
        self.offsets = np.concatenate([[0], np.cumsum(source.counts)]).tolist()  # global index of each shard's first sample
        total = self.num_workers * world_size
        self.assignment = _balanced(source.counts, total)
        # shared with persistent workers: the epoch, where each global worker starts, the batch rotation
        self._epoch = torch.zeros((), dtype=torch.long).share_memory_()
        self._start = torch.zeros(total, dtype=torch.long).share_memory_()
        self._produced = torch.zeros(total, dtype=torch.long).share_memory_()
        self._rotation = torch.zeros((), dtype=torch.long).share_memory_()
        if len(source.shards) < total:
            raise ValueError(f"{source.spec} has {len(source.shards)} shards for {total} data-loader workers in all "
                             f"({world_size} processes x {self.num_workers}): write more, smaller shards (--shard-size)")
        if self.batches_per_worker(0) == 0:
            raise ValueError(f"{source.spec}: a worker's share of the shards is smaller than one batch of {batch_size}")

    # -- the plan of an epoch ----------------------------------------------------------------
    def _shards_of(self, epoch: int, worker: int) -> list[int]:
        mine = self.assignment[worker]
        return [mine[i] for i in torch.randperm(len(mine), generator=seeded_generator(self.seed, epoch, worker)).tolist()]

    def batches_per_worker(self, epoch: int = 0) -> int:
        """Whole batches every worker yields per epoch: the smallest worker's share."""
        return min(sum(self.source.counts[s] for s in shards) for shards in self.assignment) // self.batch_size

    def __len__(self) -> int:
        """Samples this process yields per epoch."""
        return self.batches_per_worker() * self.num_workers * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))
        self._start.zero_()
        self._produced.zero_()
        self._rotation.zero_()

    def resume_at(self, epoch: int, batches_done: int, positions: dict[int, int]) -> None:
        """Start ``epoch`` after ``batches_done`` batches of this process, each global worker
        after the samples ``positions`` says it consumed (read but not decoded again)."""
        self.set_epoch(epoch)
        for g, p in positions.items():
            if 0 <= g < len(self._start):
                self._start[g] = p
        rounds, extra = divmod(int(batches_done), self.num_workers)
        for j in range(self.num_workers):  # round-robin: worker j gave a batch in every round, and one more if j < extra
            self._produced[self.rank * self.num_workers + j] = (rounds + (j < extra)) * self.batch_size
        self._rotation.fill_(extra)

    # -- reading -----------------------------------------------------------------------------
    def _samples(self, epoch: int, worker: int) -> Iterator[tuple[int, Sample]]:
        """Every sample of the worker's shards. A shard that breaks off (truncated, empty) ends
        with one sample without an image, named after the shard and what it lost: it is
        reported like an unreadable image (one warning), and the places of the lost samples
        are filled like theirs."""
        for s in self._shards_of(epoch, worker):
            read = 0
            try:
                for sample in self.source.read(self.source.shards[s]):
                    yield self.offsets[s] + read, sample
                    read += 1
            except DAMAGED_SHARD as e:
                lost = f"its last {self.source.counts[s] - read} of {self.source.counts[s]} sample(s) skipped"
                yield -1, (f"{self.source.shards[s]} (damaged shard, {type(e).__name__}: {lost})", None, {})

    def _shuffled(self, samples: Iterator, generator: torch.Generator) -> Iterator:
        buffer: list = []
        for item in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            j = int(torch.randint(len(buffer), (), generator=generator))
            buffer[j], item = item, buffer[j]
            yield item
        while buffer:
            yield buffer.pop(int(torch.randint(len(buffer), (), generator=generator)))

    def _render(self, item: Any, index: int, epoch: int) -> Any:
        image, params = decode_for_views(item, self.transform, seeded_generator(self.seed, epoch, index), self.max_side)
        return worker_item(image, params, self.transform, self.render)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        local = info.id if info is not None else 0
        epoch = int(self._epoch)
        # the data loader takes batches round-robin from its workers: after a resume it starts
        # with worker 0 again, so worker j plays the part of worker j + rotation
        local = (local + int(self._rotation)) % self.num_workers
        worker = self.rank * self.num_workers + local
        quota = self.batches_per_worker(epoch) * self.batch_size
        start, produced = int(self._start[worker]), int(self._produced[worker])
        generator = seeded_generator(self.seed, epoch, 1000 + worker)
        consumed, failures = 0, 0
        skipped: list[str] = []
        for rerun in range(2):  # a second pass only tops up the places of unreadable samples
            samples = self._shuffled(self._samples(epoch, worker), generator)
            for index, (name, item, meta) in samples:
                consumed += 1
                if consumed <= start:  # resuming: samples a previous run already trained on, not decoded again
                    continue
                if produced >= quota:
                    return
                if item is None:  # no image in the sample, or a damaged shard: a file problem, not a decode
                    skipped.append(name)
                    continue
                try:
                    out = self._render(item, index, epoch)
                except DecodeError:
                    skipped.append(name)
                    failures += 1
                    if failures >= MAX_CONSECUTIVE_FAILURES:
                        raise RuntimeError(f"{failures} unreadable samples in a row in {self.source.spec} "
                                           f"(last: {name}); are the shards right?") from None
                    continue
                failures, produced = 0, produced + 1
                yield {**out, "index": index, "skipped": skipped, "stream": (worker, consumed)}
                skipped = []
