"""Frozen-backbone features for the probes: decode, resize, normalise, pool."""
from __future__ import annotations

import warnings
from typing import Any, Callable, Iterator

import datasets
import numpy as np
import timm
import torch
from PIL import Image
from timm.layers import SelectAdaptivePool2d
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..data.decode import DecodeError, decode_image
from ..data.sampler import seeded_generator
from ..data.views import warn_skipped
from ..data.workers import init_worker
from ..heads.multilabel import POOLS
from ..transforms import ViewNormalizer, ViewPipeline, render_views_pil
from ..processes import is_local_main_process

__all__ = ["ProbeImages", "extract_features", "feature_map_pool", "pooled_features_fn", "gather_indexed", "BatchSlices",
           "batch_rows", "unique_by_index"]


class ProbeImages(Dataset):
    """Images resized to ``size`` x ``size`` (uint8 HWC) with their multi-hot targets.

    ``train=False`` (evaluation) squashes the whole image to the square, as the authors'
    script does (448 x 448); ``train=True`` takes a RandomResizedCrop + flip. Targets are the
    ``multi_hot`` column, -1 where an ``ignore`` column (VOC's difficult-only labels) says so.
    An unreadable image gives ``{"skipped": its name}``: :func:`collate_probe` leaves it out
    and :func:`extract_features` warns once per file and counts it. Each sample carries its
    ``index`` in the dataset, which is how rows gathered from several processes are told apart.
    """

    def __init__(self, dataset: datasets.Dataset, size: int, train: bool = False, seed: int = 0) -> None:
        self.images = dataset.cast_column("image", datasets.Image(decode=False))
        self.size, self.train, self.seed, self.epoch = size, train, seed, 0
        self.augment = ViewPipeline(size=size, scale=(0.08, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, flip_p=0.5)
        self.num_classes = len(self.images[0]["multi_hot"]) if len(dataset) else 0  # (not decoding image 0)

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
        return {"pixels": pixels, "target": target, "index": i}


def collate_probe(samples: list[dict]) -> dict[str, Any]:
    good = [s for s in samples if "pixels" in s]
    return {
        "pixels": torch.stack([s["pixels"] for s in good]) if good else torch.zeros(0, 1, 1, 3, dtype=torch.uint8),
        "target": torch.stack([s["target"] for s in good]) if good else torch.zeros(0),
        "index": torch.tensor([s["index"] for s in good], dtype=torch.long),
        "skipped": [s["skipped"] for s in samples if "skipped" in s],
    }


def batch_rows(batch: dict, features: Callable[[Tensor], Tensor], num_features: int, num_classes: int,
               device) -> tuple[Tensor, Tensor, Tensor]:
    """(index (n,), pooled features (n, C), targets (n, K)) of a collated batch on ``device``,
    shaped right when every image of the batch was unreadable (n = 0)."""
    n = len(batch["index"])
    f = features(batch["pixels"]) if n else torch.zeros(0, num_features, device=device)
    return batch["index"].to(device), f, batch["target"].to(device).reshape(n, num_classes)


def gather_indexed(accelerator, capacity: int, index: Tensor, *rows: Tensor) -> tuple[Tensor, ...]:
    """Every process's rows (each tagged with its dataset ``index``) on every process.

    A process's batch shrinks when images are skipped, so each is padded to ``capacity``
    rows (tagged -1) before one gather, and the padding is dropped after: rows stay with
    their index (``gather_for_metrics`` instead assumes full batches and would cut the
    wrong ones). One process (or ``accelerator`` None): the rows as they are.
    """
    if accelerator is None or accelerator.num_processes == 1:
        return (index, *rows)
    pad = capacity - index.shape[0]
    padded = [torch.cat([index, index.new_full((pad,), -1)])] + [torch.cat([r, r.new_zeros(pad, *r.shape[1:])]) for r in rows]
    gathered = accelerator.gather(tuple(padded))  # (world * capacity, ...) each
    keep = gathered[0] >= 0
    return tuple(g[keep] for g in gathered)


def unique_by_index(index: Tensor, *rows: Tensor) -> tuple[Tensor, ...]:
    """Rows in dataset order, each index once (a sharded loader repeats a few at the end)."""
    index, order = torch.sort(index)
    first = torch.ones_like(index, dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]
    return (index[first], *(r[order][first] for r in rows))


class BatchSlices(Sampler[list[int]]):
    """This process's slice (every ``world``-th sample, from ``rank``) of each batch of
    ``batches``: the processes share every batch's images, and :func:`gather_indexed` puts
    the batch back together on each of them. One process: the batches themselves."""

    def __init__(self, batches: Sampler[list[int]], rank: int = 0, world: int = 1) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[self.rank :: self.world]


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
    """Pooled features (N, C) and targets (N, K) of a frozen backbone (BN in eval mode), in
    dataset order, unreadable images left out.

    ``backbone`` is a :class:`~scene_ssl.models.TimmBackbone`. With an ``accelerator`` every
    process extracts a share of the batches and every process returns all of them
    (:func:`gather_indexed`). ``desc`` shows a progress bar with that label.
    """
    was_training = backbone.training
    backbone.eval()
    features = pooled_features_fn(backbone, pool, device)
    images = ProbeImages(dataset, image_size)
    loader = DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_probe,
                        worker_init_fn=init_worker)
    if accelerator is not None:
        loader = accelerator.prepare(loader)  # each process a share of the batches
    index, feats, targets, skipped = [], [], [], set()
    show = desc is not None and (accelerator is None or is_local_main_process())
    for batch in tqdm(loader, desc=desc, disable=not show, leave=False):
        warn_skipped(batch["skipped"], skipped)
        rows = batch_rows(batch, features, backbone.num_features, images.num_classes, device)
        i, f, t = gather_indexed(accelerator, batch_size, *rows)
        index.append(i.cpu())
        feats.append(f.cpu())
        targets.append(t.cpu())
    backbone.train(was_training)
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable image(s) left out of the probe set of {len(dataset)} "
                      f"(e.g. {min(skipped)})", stacklevel=2)
    _, feats, targets = unique_by_index(torch.cat(index), torch.cat(feats), torch.cat(targets))
    return feats, targets
