"""The loop's data: views of every image, batched by workers, made into normalised tensors."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np
import timm
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from torch import Tensor
from torch.utils.data import DataLoader

from ..processes import process_index
from ..data import (EpochShuffleSampler, ViewDataset, collate_decoded, collate_encoded, collate_views, is_stream,
                    init_worker, load_dataset, load_stream, worker_count)
from ..data.device_decode import decode_batch
from ..data.stream import ShardedViewStream, StreamState
from ..models import PretrainConfig, TimmBackbone
from ..transforms import DeviceViewRenderer, ViewNormalizer
from ..transforms.multiview import MultiViewTransform

__all__ = ["TrainData", "build_train_data", "label_table", "epoch_batches"]

_COLLATE = {"cpu": collate_views, "process": collate_decoded, "device": collate_encoded}


@dataclasses.dataclass
class TrainData:
    """What the loop iterates: the dataset, its loader, and ``to_views(batch)`` -> V x (B, 3, S, S)
    normalised float views on the device. ``labels`` (N, C) bool, on the device, are the
    dataset's multi-hot labels, for diagnostics only (None when it has none). A streamed dataset (``wds:``,
    ``hf:...?streaming=1``) shards itself across processes and keeps its place in ``stream``."""

    dataset: ViewDataset | ShardedViewStream
    loader: DataLoader
    to_views: Callable[[dict], list[Tensor]]
    labels: Tensor | None
    stream: StreamState | None = None
    decode: Callable[[dict], dict] = lambda batch: batch  # --render device: the batch's JPEGs, decoded on the device
    sampler: EpochShuffleSampler | None = None  # the order of a map-style dataset

    def batches(self, accelerator: Accelerator, epoch: int, done: int) -> Iterable[dict]:
        """The batches of ``epoch`` after the first ``done`` of this process (a resumed run)."""
        if self.stream is None:
            return epoch_batches(accelerator, self.loader, self.sampler, self.dataset, epoch, done)
        if done:  # every worker fast-forwards to where the checkpoint says it was
            self.dataset.resume_at(epoch, done, self.stream.positions)
        else:
            self.dataset.set_epoch(epoch)
            self.stream.reset()
        return (send_to_device(b, accelerator.device, non_blocking=True) for b in self.loader)


def epoch_batches(accelerator: Accelerator, loader: DataLoader, sampler: EpochShuffleSampler, dataset, epoch: int,
                  done: int) -> DataLoader:
    """The prepared map-style ``loader``'s batches of ``epoch`` after its first ``done`` on this
    process: the same order as an uninterrupted run, minus what was done.

    The epoch is set on the sampler and the dataset directly: on several processes the loader
    that skips wraps the sampler in one more layer, which its ``set_epoch`` does not reach (a
    resumed run then finished its epoch in epoch 0's order); and on the loader iterated, which
    re-applies its own epoch counter when iteration starts."""
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    loader = accelerator.skip_first_batches(loader, done) if done else loader
    loader.set_epoch(epoch)
    return loader


def label_table(data) -> Tensor | None:
    """The dataset's multi-hot labels (N, C) as bool, or None when it has no labels."""
    if "multi_hot" not in data.column_names or not len(data) or not len(data.select_columns(["multi_hot"])[0]["multi_hot"]):
        return None
    table = torch.from_numpy(np.stack(data.with_format("numpy")["multi_hot"]).astype(bool))
    return table if table.any() else None


def _view_renderer(cfg: PretrainConfig, transform: MultiViewTransform, encoder: TimmBackbone,
                   device: torch.device) -> Callable[[dict], list[Tensor]]:
    data_cfg = timm.data.resolve_model_data_config(encoder.model)
    if cfg.render != "cpu":  # workers decoded (or read); crop, colour, blur, solarize, flip happen here, batched
        return DeviceViewRenderer(transform.pipelines, data_cfg["mean"], data_cfg["std"]).to(device)
    normalizer = ViewNormalizer(data_cfg["mean"], data_cfg["std"]).to(device)

    def to_views(batch: dict) -> list[Tensor]:  # workers rendered uint8 views: only normalisation is left
        return [normalizer(v.permute(0, 3, 1, 2)) for v in batch["views"].unbind(0)]  # V x (B, 3, S, S)
    return to_views


def _stream_data(cfg: PretrainConfig, transform: MultiViewTransform, encoder: TimmBackbone,
                 accelerator: Accelerator) -> TrainData:
    if cfg.render == "device":
        raise ValueError("render device reads files; streamed data (wds:, hf:...?streaming=1) decodes in the workers: use --render process")
    workers = worker_count(cfg.num_workers)
    dataset = ShardedViewStream(load_stream(cfg.data, cfg.split), transform, batch_size=cfg.batch_size,
                                num_workers=workers, rank=process_index(), world_size=accelerator.num_processes,
                                seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, render=cfg.render,
                                max_side=cfg.decode_max_side)
    loader = _loader(dataset, cfg, workers, accelerator)
    return TrainData(dataset, loader, _view_renderer(cfg, transform, encoder, accelerator.device), None,
                     StreamState(workers * accelerator.num_processes))


def _loader(dataset, cfg: PretrainConfig, workers: int, accelerator: Accelerator, **sampling) -> DataLoader:
    """The data loader of either kind of dataset: batches collated for ``cfg.render``, pinned for a
    GPU, workers that leave preemption signals to the training process but end with it
    (:func:`~scene_ssl.data.workers.init_worker`) and persist across epochs (the epoch is in
    shared memory: no re-fork per epoch)."""
    return DataLoader(dataset, batch_size=cfg.batch_size, num_workers=workers, collate_fn=_COLLATE[cfg.render],
                      pin_memory=accelerator.device.type == "cuda", worker_init_fn=init_worker,
                      persistent_workers=workers > 0, **sampling)


def build_train_data(cfg: PretrainConfig, transform: MultiViewTransform, encoder: TimmBackbone,
                     accelerator: Accelerator) -> TrainData:
    """Load ``cfg.data`` (bad specs and missing files fail here) and build its loader.
    ``encoder`` gives the normalisation (its timm data config)."""
    if cfg.render != "cpu" and not transform.pipelines:
        raise ValueError("render process / device needs ViewPipeline-based views (not arbitrary callables)")
    if is_stream(cfg.data):
        return _stream_data(cfg, transform, encoder, accelerator)
    with accelerator.main_process_first():  # the embedded scenes are generated once
        data = load_dataset(cfg.data, cfg.split)
    dataset = ViewDataset(data, transform, seed=cfg.seed, render=cfg.render, max_side=cfg.decode_max_side)
    if len(dataset) < cfg.batch_size * accelerator.num_processes:
        raise ValueError(f"{cfg.data} has {len(dataset)} images, fewer than one global batch "
                         f"(batch_size {cfg.batch_size} x {accelerator.num_processes} processes)")
    sampler = EpochShuffleSampler(len(dataset), seed=cfg.seed)
    loader = _loader(dataset, cfg, worker_count(cfg.num_workers), accelerator, sampler=sampler, drop_last=True,
                     # its own generator: starting an epoch (or a resumed one) draws no number from the
                     # global RNG, so a resumed run's random stream continues exactly where it was saved
                     generator=torch.Generator().manual_seed(cfg.seed))
    decode = ((lambda batch: decode_batch(batch, accelerator.device, dataset.max_side)) if cfg.render == "device"
              else (lambda batch: batch))
    labels = label_table(data)
    return TrainData(dataset, loader, _view_renderer(cfg, transform, encoder, accelerator.device),
                     None if labels is None else labels.to(accelerator.device), decode=decode, sampler=sampler)
