"""Frozen-backbone features for the probes: decode, resize, normalise, pool."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import datasets
import numpy as np
import timm
import torch
from PIL import Image
from timm.layers import SelectAdaptivePool2d
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.decode import DecodeError, decode_image
from ..data.sampler import seeded_generator
from ..data.views import warn_skipped
from ..data.workers import init_worker
from ..heads.multilabel import POOLS
from ..transforms import ViewNormalizer, ViewPipeline, render_views_pil

__all__ = ["ProbeImages", "extract_features", "feature_map_pool", "pooled_features_fn"]


class ProbeImages(Dataset):
    """Images resized to ``size`` x ``size`` (uint8 HWC) with their multi-hot targets.

    ``train=False`` (evaluation) squashes the whole image to the square, as the authors'
    script does (448 x 448); ``train=True`` takes a RandomResizedCrop + flip. Targets are the
    ``multi_hot`` column, -1 where an ``ignore`` column (VOC's difficult-only labels) says so.
    An unreadable image gives ``{"skipped": its name}``: :func:`collate_probe` leaves it out
    and :func:`extract_features` warns once per file and counts it.
    """

    def __init__(self, dataset: datasets.Dataset, size: int, train: bool = False, seed: int = 0) -> None:
        self.images = dataset.cast_column("image", datasets.Image(decode=False))
        self.size, self.train, self.seed, self.epoch = size, train, seed, 0
        self.augment = ViewPipeline(size=size, scale=(0.08, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, flip_p=0.5)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        row = self.images[i]
        try:
            image = decode_image(row["image"])
        except DecodeError as e:
            return {"skipped": e.source}
        if self.train:
            g = seeded_generator(self.seed, self.epoch, i)
            pixels = render_views_pil(image, self.augment.sample(torch.tensor([[0.0, 0.0, *image.size]]), g), [self.augment])[0]
        else:
            pixels = torch.from_numpy(np.array(image.resize((self.size, self.size), Image.Resampling.BILINEAR)))
        target = torch.tensor(row["multi_hot"], dtype=torch.float32)
        if "ignore" in row:
            target = target - torch.tensor(row["ignore"], dtype=torch.float32)  # 0 -> -1 where ignored
        return {"pixels": pixels, "target": target}


def collate_probe(samples: list[dict]) -> dict[str, Any]:
    good = [s for s in samples if "pixels" in s]
    return {
        "pixels": torch.stack([s["pixels"] for s in good]) if good else torch.zeros(0, 1, 1, 3, dtype=torch.uint8),
        "target": torch.stack([s["target"] for s in good]) if good else torch.zeros(0),
        "skipped": [s["skipped"] for s in samples if "skipped" in s],
    }


def feature_map_pool(pool: str) -> nn.Module:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    return SelectAdaptivePool2d(pool_type=POOLS[pool], flatten=True)


def pooled_features_fn(backbone: nn.Module, pool: str, device: torch.device | str) -> Callable[[Tensor], Tensor]:
    """``pixels -> features``: uint8 (B, S, S, 3) images to pooled float features (B, C) of
    ``backbone`` (a :class:`~scene_ssl.models.TimmBackbone`), normalised with its data config.
    Call it under ``torch.no_grad()`` with the backbone in eval mode (a frozen probe)."""
    data_cfg = timm.data.resolve_model_data_config(backbone.model)
    normalizer = ViewNormalizer(data_cfg["mean"], data_cfg["std"]).to(device)
    pooler = feature_map_pool(pool)

    def features(pixels: Tensor) -> Tensor:
        x = normalizer(pixels.to(device).permute(0, 3, 1, 2))  # (B, 3, S, S) channels-last
        return pooler(backbone.feature_map(x).float())

    return features


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    dataset: datasets.Dataset,
    *,
    image_size: int,
    pool: str = "avgmax",
    batch_size: int = 64,
    num_workers: int = 2,
    device: torch.device | str = "cpu",
    accelerator=None,
    desc: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Pooled features (N, C) and targets (N, K) of a frozen backbone (BN in eval mode).

    ``backbone`` is a :class:`~scene_ssl.models.TimmBackbone`. With an ``accelerator`` the
    images are split over the processes and gathered back with ``gather_for_metrics``.
    ``desc`` shows a progress bar with that label.
    """
    was_training = backbone.training
    backbone.eval()
    features = pooled_features_fn(backbone, pool, device)
    loader = DataLoader(ProbeImages(dataset, image_size), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_probe, worker_init_fn=init_worker)
    if accelerator is not None:
        loader = accelerator.prepare(loader)
    feats, targets, skipped = [], [], set()
    show = desc is not None and (accelerator is None or accelerator.is_local_main_process)
    for batch in tqdm(loader, desc=desc, disable=not show, leave=False):
        warn_skipped(batch["skipped"], skipped)
        f = features(batch["pixels"])
        t = batch["target"].to(device)
        if accelerator is not None:
            f, t = accelerator.gather_for_metrics((f, t))
        feats.append(f.cpu())
        targets.append(t.cpu())
    backbone.train(was_training)
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable image(s) left out of the probe set of {len(dataset)} "
                      f"(e.g. {min(skipped)})", stacklevel=2)
    return torch.cat(feats), torch.cat(targets)
