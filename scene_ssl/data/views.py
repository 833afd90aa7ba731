"""The SSL dataset: decode each image once, make all its views, skip unreadable files."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import datasets
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..transforms.multiview import MultiViewTransform
from .decode import DecodeError, dct_reduction, describe_source, load_image, open_image, oriented_size
from .device_decode import read_encoded
from .sampler import SharedEpoch, seeded_generator

__all__ = ["ViewDataset", "warn_skipped", "collate_views", "collate_decoded", "collate_encoded", "worker_item", "MAX_CONSECUTIVE_FAILURES",
           "RENDER_MODES", "DECODE_SIDE_FACTOR", "decode_side", "scale_crops", "first_readable"]

#: where the views are made (``--render``): cpu: the data workers render them (PIL);
#: process: the workers decode, the training process renders them in batches on its device;
#: device: the workers read JPEG bytes, the training process decodes and renders them
RENDER_MODES = ("cpu", "process", "device")

#: a run of this many unreadable images in a row means the data is broken, not noisy
MAX_CONSECUTIVE_FAILURES = 50

#: an image is used at most this many times the views' side on its longer side (by default)
DECODE_SIDE_FACTOR = 4


def decode_side(transform: MultiViewTransform, max_side: int | None = None) -> int | None:
    """The longest side an image is used at: ``max_side``, else ``DECODE_SIDE_FACTOR`` x the views'
    side (None for views made by arbitrary callables: they get the image as it is).

    Why 4x: a RandomResizedCrop keeps at least ``scale_min`` of the area at a ratio of at most
    4/3, so on a 4:3 photo its shorter side is at least sqrt(scale_min x 3/4) of the image's
    height; at ``scale_min`` 0.2 (the papers') and the longer side at 4 x S that is 1.16 x S:
    every view keeps its full resolution (BAM's blocks, 0.7 of each side: 0.81 x S, nearly).
    The device path then holds at most B x (4S)² x 3 bytes of images per batch (B = 128 at
    S = 224: 308 MB), whatever the photos' size.

    Example:
        >>> from scene_ssl.transforms import MoCoV2Transform
        >>> decode_side(MoCoV2Transform(size=224)), decode_side(MoCoV2Transform(size=224), 512)
        (896, 512)
    """
    if max_side is not None:
        return int(max_side)
    pipelines = getattr(transform, "pipelines", None)
    return DECODE_SIDE_FACTOR * max(p.size for p in pipelines) if pipelines else None


class ViewDataset(SharedEpoch, Dataset):
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

    With ``render="process"`` the worker only decodes and draws the parameters; items are
    ``{"image": uint8 (H, W, 3), "params": {field: (V, ...)}, ...}`` for
    :func:`collate_decoded` and :class:`~scene_ssl.transforms.DeviceViewRenderer`. With
    ``render="device"`` it only reads JPEG bytes and header (other formats are decoded there):
    items for :func:`collate_encoded`, decoded on the device by
    :func:`~scene_ssl.data.device_decode.decode_batch`.

    Args:
        dataset: a dataset with an ``image`` column (from :func:`scene_ssl.data.load_dataset`).
        transform: a :class:`~scene_ssl.transforms.MultiViewTransform`.
        seed: base seed of the augmentation.
        render: ``"cpu"`` (PIL in the worker), ``"process"`` (decode only) or ``"device"`` (read only).
        max_side: the longest side an image is used at (default: :func:`decode_side`): larger
            ones are decoded smaller (JPEG DCT) or resized, on every render path, and their
            views' crops scaled with them (the same crops, resampled).
        reduce_decode: decode a JPEG at 1/2, 1/4 or 1/8 of its size whenever every view's
            crop still has its output size (:func:`decode_for_views`); False: always in full.
    """

    def __init__(self, dataset: datasets.Dataset, transform: MultiViewTransform, seed: int = 0,
                 render: str = "cpu", max_side: int | None = None, reduce_decode: bool = True) -> None:
        if render not in RENDER_MODES:
            raise ValueError(f"render must be one of {RENDER_MODES}, got {render!r}")
        self.render, self.max_side, self.reduce_decode = render, decode_side(transform, max_side), reduce_decode
        if "image" not in dataset.column_names:
            raise ValueError(f"the dataset has no 'image' column (columns: {dataset.column_names})")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        # raw {"path", "bytes"}: we decode ourselves, once, and can catch the failures
        self.images = dataset.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
        self.transform = transform
        self.seed = int(seed)
        SharedEpoch.__init__(self)  # seen by persistent workers

    def __len__(self) -> int:
        return len(self.images)

    def _views(self, item: Any, index: int) -> Any:
        generator = seeded_generator(self.seed, self.epoch, index)
        if self.render == "device":  # JPEGs are decoded on the training device (device_decode.py)
            encoded, decoded, turn, (width, height) = read_encoded(item, self.max_side)
            params = self.transform.sample(width, height, generator=generator)
            if decoded is not None:  # not for the device's decoder: decoded here, within max_side
                scale_crops(params, decoded.size, (width, height))
            return {"encoded": encoded, "image": None if decoded is None else torch.from_numpy(np.array(decoded)),
                    "params": vars(params).copy(), "name": describe_source(item), "turn": turn}
        image, params = decode_for_views(item, self.transform, generator, self.max_side, self.reduce_decode)
        return worker_item(image, params, self.transform, self.render)

    def __getitem__(self, index: int) -> dict[str, Any]:
        j, views, skipped = first_readable(index, len(self.images), lambda j: self._views(self.images[j]["image"], j))
        return {**views, "index": j, "skipped": skipped}


def first_readable(index: int, n: int, read: Callable[[int], Any], replace: bool = True) -> tuple[int | None, Any, list[str]]:
    """``(j, read(j), the names of the unreadable files before it)``: the first of ``index``,
    ``index + 1`` ... (wrapping at ``n``) that ``read`` decodes without a DecodeError; with
    ``replace=False`` only ``index`` itself is tried (``j`` None when it fails).

    Raises:
        RuntimeError: ``MAX_CONSECUTIVE_FAILURES`` unreadable images in a row (broken data, not noisy).
    """
    skipped: list[str] = []
    for attempt in range(min(n, MAX_CONSECUTIVE_FAILURES) if replace else 1):
        j = (index + attempt) % n
        try:
            return j, read(j), skipped
        except DecodeError as e:
            skipped.append(e.source)
    if not replace:
        return None, None, skipped
    raise RuntimeError(f"{len(skipped)} images in a row could not be decoded (first: {skipped[0]}); is the data folder right?")


def _reduction(params, size: int | None, width: int, height: int, max_side: int | None) -> int:
    """The largest JPEG DCT reduction (1, 2, 4, 8) that leaves every view's crop at least its
    output ``size``, so that no view loses resolution; with ``max_side``, also reduce while
    the longer side stays at least that (a resize takes it the rest of the way)."""
    reduction = 1
    if size is not None:
        crop = params.crop
        reduction = dct_reduction(float(torch.minimum(crop[:, 2] - crop[:, 0], crop[:, 3] - crop[:, 1]).min()), size)
    if max_side is not None:
        reduction = dct_reduction(max(width, height), max_side, reduction)
    return reduction


def decode_for_views(item: Any, transform: MultiViewTransform, generator, max_side: int | None = None,
                     reduce: bool = True):
    """``(image, params)``: the views' parameters drawn for the image's full (upright) size, then
    the image decoded only as large as its smallest crop needs (a JPEG at 1/2, 1/4, 1/8 from
    the DCT) and at most ``max_side`` on its longer side, the crops expressed in the decoded
    image's pixels. The views do not depend on the reduction beyond resampling.
    ``reduce=False`` decodes JPEGs in full (still within ``max_side``).

    Raises:
        DecodeError: the image is missing, truncated or corrupt.
    """
    image = open_image(item)  # the header: the size the views are drawn for, no pixels yet
    width, height = oriented_size(image)
    params = transform.sample(width, height, generator=generator)
    pipelines = getattr(transform, "pipelines", None)
    size = max(p.size for p in pipelines) if pipelines and reduce else None  # arbitrary callables: full decode
    image = load_image(image, describe_source(item), _reduction(params, size, width, height, max_side), max_side)
    scale_crops(params, image.size, (width, height))
    return image, params


def scale_crops(params, decoded: tuple[int, int], drawn: tuple[int, int]) -> None:
    """Express the views' crops, drawn for an image of size ``drawn`` (width, height), in the
    pixels of the same image decoded at ``decoded``: the same crops, in a smaller image."""
    if tuple(decoded) != tuple(drawn):
        scale = torch.tensor([decoded[0] / drawn[0], decoded[1] / drawn[1]] * 2, dtype=params.crop.dtype)
        params.crop = params.crop * scale


def worker_item(image, params, transform: MultiViewTransform, render: str) -> dict[str, Any]:
    """What a worker hands over for one decoded image: its rendered views ``{"views": uint8
    (V, S, S, 3)}`` (``render="cpu"``), or with ``render="process"`` the image and the views'
    parameters for the device renderer."""
    if render == "process":
        return {"image": torch.from_numpy(np.array(image)), "params": vars(params).copy()}
    return {"views": transform.render(image, params)}


def warn_skipped(names, seen: set[str]) -> None:
    """Warn once for each unreadable file not met before and remember it, so that each is
    counted once (the training loop and the probes alike)."""
    for name in names or []:
        if name not in seen:
            seen.add(name)
            warnings.warn(f"skipping unreadable image: {name}", stacklevel=3)


def collate_views(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into ``{"views": uint8 (V, B, S, S, 3), "index": (B,), "skipped": [...]}``.

    ``views[k]`` is view k of every image, one contiguous block per view: after
    ``permute(0, 3, 1, 2)`` each is a channels-last (B, 3, S, S) tensor, and the whole batch
    is a single pinned host-to-device copy.
    """
    return {"views": torch.stack([s["views"] for s in samples], dim=1), **_common(samples)}


def collate_decoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad decoded images into one uint8 (B, H_max, W_max, 3) block and stack the view
    parameters view-major (row ``k * B + b`` = view k of image b), for the device renderer."""
    h = max(s["image"].shape[0] for s in samples)
    w = max(s["image"].shape[1] for s in samples)
    images = torch.zeros(len(samples), h, w, 3, dtype=torch.uint8)
    for i, s in enumerate(samples):
        images[i, : s["image"].shape[0], : s["image"].shape[1]] = s["image"]
    return {"images": images, "params": _view_major(samples), **_common(samples)}


def collate_encoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples of :class:`ViewDataset` ``render="device"`` -> ``{"encoded": [bytes arrays or
    None], "decoded": [uint8 (H, W, 3) or None], "turns": [EXIF orientations], "names": [...],
    "params": view-major, "index", "skipped"}`` for
    :func:`~scene_ssl.data.device_decode.decode_batch`. The bytes stay numpy arrays: the loader
    moves tensors to the device, and the decoder wants its input on the host."""
    return {"encoded": [s.get("encoded") for s in samples], "decoded": [s.get("image") for s in samples],
            "turns": [s.get("turn", 1) for s in samples], "names": [s["name"] for s in samples],
            "params": _view_major(samples), **_common(samples)}


def _view_major(samples: list[dict[str, Any]]) -> dict[str, Tensor]:
    """The samples' view parameters stacked view-major: row ``k * B + b`` = view k of image b."""
    params = {}
    for key in samples[0]["params"]:
        stacked = torch.stack([s["params"][key] for s in samples], dim=1)  # (V, B, ...)
        stacked = stacked.reshape(-1, *stacked.shape[2:])
        params[key] = stacked.float() if stacked.is_floating_point() else stacked
    return params


def _common(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """What every batch carries: the images' indices, the unreadable files they replaced, and
    for a streamed batch (one worker's) where that worker got to, its last sample's."""
    return {"index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
            "skipped": [name for s in samples for name in s["skipped"]],
            **({"stream": samples[-1]["stream"]} if "stream" in samples[0] else {})}
