"""The loop's data: views of every image, batched by workers, made into normalised tensors."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import timm
import torch
from accelerate import Accelerator
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..data import EpochShuffleSampler, ViewDataset, collate_decoded, collate_views, load_dataset, worker_count
from ..transforms import DeviceViewRenderer, ViewNormalizer
from ..transforms.multiview import MultiViewTransform
from .config import PretrainConfig
from .preemption import ignore_preemption_signals

__all__ = ["TrainData", "build_train_data", "label_table"]


@dataclasses.dataclass
class TrainData:
    """What the loop iterates: the dataset, its loader, and ``to_views(batch)`` -> V x (B, 3, S, S)
    normalised float views on the device. ``labels`` (N, C) bool are the dataset's multi-hot
    labels, for diagnostics only (None when it has none)."""

    dataset: ViewDataset
    loader: DataLoader
    to_views: Callable[[dict], list[Tensor]]
    labels: Tensor | None


def label_table(data) -> Tensor | None:
    """The dataset's multi-hot labels (N, C) as bool, or None when it has no labels."""
    if "multi_hot" not in data.column_names or not len(data) or not len(data[0]["multi_hot"]):
        return None
    table = torch.from_numpy(np.stack(data.with_format("numpy")["multi_hot"]).astype(bool))
    return table if table.any() else None


def _view_renderer(cfg: PretrainConfig, transform: MultiViewTransform, model: nn.Module,
                   device: torch.device) -> Callable[[dict], list[Tensor]]:
    data_cfg = timm.data.resolve_model_data_config(model.encoder.model)
    if cfg.augment_on == "gpu":  # workers decoded; crop, colour, blur, solarize, flip happen here, batched
        return DeviceViewRenderer(transform.pipelines, data_cfg["mean"], data_cfg["std"]).to(device)
    normalizer = ViewNormalizer(data_cfg["mean"], data_cfg["std"]).to(device)

    def to_views(batch: dict) -> list[Tensor]:  # workers rendered uint8 views: only normalisation is left
        return [normalizer(v.permute(0, 3, 1, 2)) for v in batch["views"].unbind(0)]  # V x (B, 3, S, S)
    return to_views


def build_train_data(cfg: PretrainConfig, transform: MultiViewTransform, model: nn.Module,
                     accelerator: Accelerator) -> TrainData:
    """Load ``cfg.data`` (bad specs and missing files fail here) and build its loader."""
    on_device = cfg.augment_on == "gpu"
    if on_device and not getattr(transform, "pipelines", None):
        raise ValueError("augment_on=gpu needs ViewPipeline-based views (not arbitrary callables)")
    with accelerator.main_process_first():  # the embedded scenes are generated once
        data = load_dataset(cfg.data, cfg.split)
    dataset = ViewDataset(data, transform, seed=cfg.seed, render="device" if on_device else "cpu",
                          max_side=cfg.decode_max_side)
    if len(dataset) < cfg.batch_size * accelerator.num_processes:
        raise ValueError(f"{cfg.data} has {len(dataset)} images, fewer than one global batch "
                         f"(batch_size {cfg.batch_size} x {accelerator.num_processes} processes)")
    workers = worker_count(cfg.num_workers)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=EpochShuffleSampler(len(dataset), seed=cfg.seed), drop_last=True,
        num_workers=workers, collate_fn=collate_decoded if on_device else collate_views,
        pin_memory=accelerator.device.type == "cuda", worker_init_fn=ignore_preemption_signals,
        persistent_workers=workers > 0,  # no re-fork per epoch; the epoch is in shared memory
        # its own generator: starting an epoch (or a resumed one) draws no number from the
        # global RNG, so a resumed run's random stream continues exactly where it was saved
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    return TrainData(dataset, loader, _view_renderer(cfg, transform, model, accelerator.device), label_table(data))
