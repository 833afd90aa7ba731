"""The SSL dataset: decode each image once, make all its views, skip unreadable files."""
from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..transforms.multiview import MultiViewTransform
from .decode import DecodeError, decode_image
from .sampler import seeded_generator

__all__ = ["ViewDataset", "collate_views", "collate_decoded", "MAX_CONSECUTIVE_FAILURES"]

#: a run of this many unreadable images in a row means the data is broken, not noisy
MAX_CONSECUTIVE_FAILURES = 50


class ViewDataset(Dataset):
    """Map-style dataset of multi-view samples over an HF ``datasets.Dataset``.

    Each item is ``{"views": uint8 (V, S, S, 3), "index": int, "skipped": [file names]}``.
    An unreadable image (missing, truncated, corrupt, not an image) is replaced by the next
    readable one and its name reported in ``skipped``, so batches keep their size (which
    distributed training needs) and an epoch never crashes; the training loop warns once
    per file and counts them.

    The random parameters of sample ``i`` in epoch ``e`` come from a generator seeded with
    ``(seed, e, i)``: the views do not depend on the number of workers, on which worker
    drew the sample, nor on where a run was stopped and resumed. Call :meth:`set_epoch`
    before each epoch; the epoch lives in shared memory, so persistent workers see it.

    With ``render="device"`` the worker only decodes and draws the parameters; items are
    ``{"image": uint8 (H, W, 3), "params": {field: (V, ...)}, ...}`` for
    :func:`collate_decoded` and :class:`~scene_ssl.transforms.DeviceViewRenderer`.

    Args:
        dataset: a dataset with an ``image`` column (from :func:`scene_ssl.data.load_dataset`).
        transform: a :class:`~scene_ssl.transforms.MultiViewTransform`.
        seed: base seed of the augmentation.
        render: ``"cpu"`` (PIL in the worker) or ``"device"`` (decode only).
        max_side: with ``render="device"``, decode JPEGs larger than this at a reduced DCT
            scale (a one-off downscale that also shrinks the host-to-device copy).
    """

    def __init__(self, dataset: datasets.Dataset, transform: MultiViewTransform, seed: int = 0,
                 render: str = "cpu", max_side: int | None = None) -> None:
        if render not in ("cpu", "device"):
            raise ValueError(f"render must be 'cpu' or 'device', got {render!r}")
        self.render, self.max_side = render, max_side
        if "image" not in dataset.column_names:
            raise ValueError(f"the dataset has no 'image' column (columns: {dataset.column_names})")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        # raw {"path", "bytes"}: we decode ourselves, once, and can catch the failures
        self.images = dataset.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
        self.transform = transform
        self.seed = int(seed)
        self._epoch = torch.zeros((), dtype=torch.long).share_memory_()  # seen by persistent workers

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.images)

    def _views(self, item: Any, index: int) -> Any:
        image = decode_image(item, max_side=self.max_side if self.render == "device" else None)
        params = self.transform.sample(*image.size, generator=seeded_generator(self.seed, self.epoch, index))
        if self.render == "device":
            return {"image": torch.from_numpy(np.array(image)), "params": {k: getattr(params, k) for k in vars(params)}}
        return self.transform.render(image, params)

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped: list[str] = []
        n = len(self.images)
        for attempt in range(min(n, MAX_CONSECUTIVE_FAILURES)):
            j = (index + attempt) % n
            try:
                views = self._views(self.images[j]["image"], j)
            except DecodeError as e:
                skipped.append(e.source)
                continue
            if self.render == "device":
                return {**views, "index": j, "skipped": skipped}
            return {"views": views, "index": j, "skipped": skipped}
        raise RuntimeError(
            f"{len(skipped)} images in a row could not be decoded (first: {skipped[0]}); is the data folder right?"
        )


def collate_views(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into ``{"views": uint8 (V, B, S, S, 3), "index": (B,), "skipped": [...]}``.

    ``views[k]`` is view k of every image, one contiguous block per view: after
    ``permute(0, 3, 1, 2)`` each is a channels-last (B, 3, S, S) tensor, and the whole batch
    is a single pinned host-to-device copy.
    """
    return {
        "views": torch.stack([s["views"] for s in samples], dim=1),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
        "skipped": [name for s in samples for name in s["skipped"]],
        **_stream_position(samples),
    }


def collate_decoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad decoded images into one uint8 (B, H_max, W_max, 3) block and stack the view
    parameters view-major (row ``k * B + b`` = view k of image b), for the device renderer."""
    h = max(s["image"].shape[0] for s in samples)
    w = max(s["image"].shape[1] for s in samples)
    images = torch.zeros(len(samples), h, w, 3, dtype=torch.uint8)
    for i, s in enumerate(samples):
        images[i, : s["image"].shape[0], : s["image"].shape[1]] = s["image"]
    params = {}
    for key in samples[0]["params"]:
        stacked = torch.stack([s["params"][key] for s in samples], dim=1)  # (V, B, ...)
        params[key] = stacked.reshape(-1, *stacked.shape[2:]).float() if stacked.is_floating_point() else stacked.reshape(-1, *stacked.shape[2:])
    return {
        "images": images,
        "params": params,
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
        "skipped": [name for s in samples for name in s["skipped"]],
        **_stream_position(samples),
    }


def _stream_position(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A streamed batch (one worker's) keeps where that worker got to: its last sample's."""
    return {"stream": samples[-1]["stream"]} if "stream" in samples[0] else {}
