"""Segmentation data: mmseg's training pipeline and evaluation items, over a :class:`SegmentationSet`.

Training (each step seeded by (seed, epoch, index)): resize to ``scale`` times a random
ratio keeping the aspect ratio (mmcv's ``imrescale``: the image fits the (long, short)
target; bilinear without antialiasing and nearest-neighbour labels, as OpenCV's), a random crop re-drawn up to 10 times while one class covers more than
``cat_max_ratio`` of it, a horizontal flip, mmseg's PhotoMetricDistortion, normalisation,
and padding to the crop (image 0, label 255). Evaluation: the image resized to
``test_scale`` the same way, the label at its own size (predictions are scored there).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..data import decode_image
from ..data.decode import DecodeError, describe_source
from ..data.sampler import SharedEpoch
from ..data.semantic import IGNORE, SegmentationSet
from ..data.sources import parse_spec, spec_usage
from ..data.views import first_readable

__all__ = ["Pipeline", "SegmentationDataset", "rescale_size", "crop_box", "photometric_distortion", "collate_segmentation",
           "load_segmentation_set"]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """The training and evaluation transforms' settings (see :class:`~scene_ssl.segmentation.config.SegmentationConfig`)."""

    scale: tuple[int, int] = (2049, 1025)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    crop_size: tuple[int, int] = (769, 769)  # (height, width)
    cat_max_ratio: float = 0.75
    flip: float = 0.5
    photometric: bool = True
    test_scale: tuple[int, int] = (2049, 1025)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # of [0, 1] pixels: the backbone's
    std: tuple[float, ...] = (0.229, 0.224, 0.225)


def rescale_size(width: int, height: int, scale: tuple[int, int], ratio: float = 1.0) -> tuple[int, int]:
    """(width, height) of an image rescaled to fit ``scale`` x ``ratio`` (long, short side, each
    truncated to whole pixels as mmseg's Resize) with its aspect ratio kept (mmcv's ``imrescale``).

    Example:
        >>> rescale_size(2048, 1024, (2049, 1025)), rescale_size(500, 375, (2048, 512)), rescale_size(80, 60, (160, 120), 0.5)
        ((2049, 1025), (683, 512), (80, 60))
        >>> rescale_size(2048, 1024, (2049, 1025), 0.5)  # (1024, 512): int(2049 x 0.5)
        (1024, 512)
    """
    long_side, short_side = int(max(scale) * ratio), int(min(scale) * ratio)
    factor = min(long_side / max(width, height), short_side / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def crop_box(label: np.ndarray, crop: tuple[int, int], cat_max_ratio: float,
             rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a random crop (clipped to the image), re-drawn up to 10
    times while one class covers ``cat_max_ratio`` or more of its labelled pixels (mmseg's
    RandomCrop; the last draw is kept)."""
    height, width = label.shape

    def draw() -> tuple[int, int, int, int]:
        top = int(rng.integers(0, max(height - crop[0], 0) + 1))
        left = int(rng.integers(0, max(width - crop[1], 0) + 1))
        return top, left, min(top + crop[0], height), min(left + crop[1], width)

    box = draw()
    if cat_max_ratio < 1:
        for _ in range(10):
            values, counts = np.unique(label[box[0]:box[2], box[1]:box[3]], return_counts=True)
            counts = counts[values != IGNORE]
            if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
                break
            box = draw()
    return box


def resize_image(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 resized to ``size`` (width, height) bilinearly without antialiasing, on
    pixel centres, rounded: OpenCV's INTER_LINEAR, which mmcv's imresize uses (PIL's bilinear
    would blur when shrinking)."""
    if (pixels.shape[1], pixels.shape[0]) == tuple(size):
        return pixels
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1)[None].float()  # a writable copy
    out = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) label map resized to ``size`` (width, height) by nearest neighbour as OpenCV's
    INTER_NEAREST (source pixel floor(x * scale), torch's ``nearest``)."""
    if (label.shape[1], label.shape[0]) == tuple(size):
        return label
    out = F.interpolate(torch.from_numpy(np.ascontiguousarray(label))[None, None].float(), size=(size[1], size[0]),
                        mode="nearest")
    return out[0, 0].to(torch.uint8).numpy()


def _clip_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(pixels, 0, 255).astype(np.uint8)


def photometric_distortion(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mmseg's PhotoMetricDistortion of an (H, W, 3) uint8 RGB image: each step with p = 0.5,
    brightness (+-32), contrast (x0.5-1.5) first or last (a coin), saturation (x0.5-1.5) and
    hue (+-18 of 180) in HSV; every step clips to uint8 as mmseg's does."""
    if rng.integers(2):
        pixels = _clip_uint8(pixels.astype(np.float32) + rng.uniform(-32, 32))
    contrast_first = bool(rng.integers(2))

    def contrast(p: np.ndarray) -> np.ndarray:
        return _clip_uint8(p.astype(np.float32) * rng.uniform(0.5, 1.5)) if rng.integers(2) else p

    if contrast_first:
        pixels = contrast(pixels)
    if rng.integers(2):
        hsv = np.array(Image.fromarray(pixels).convert("HSV"))
        hsv[..., 1] = _clip_uint8(hsv[..., 1].astype(np.float32) * rng.uniform(0.5, 1.5))
        pixels = np.array(Image.fromarray(hsv, "HSV").convert("RGB"))
    if rng.integers(2):
        hsv = np.array(Image.fromarray(pixels).convert("HSV"))
        shift = int(rng.integers(-18, 18)) * 256 / 180  # PIL's hue goes round in 256 steps, OpenCV's in 180
        hsv[..., 0] = np.round(hsv[..., 0].astype(np.float32) + shift).astype(np.int64) % 256
        pixels = np.array(Image.fromarray(hsv, "HSV").convert("RGB"))
    if not contrast_first:
        pixels = contrast(pixels)
    return pixels


class SegmentationDataset(SharedEpoch, Dataset):
    """Training items ``{"image": (3, h, w) normalised, "label": (h, w) int64, "skipped"}`` of
    one crop size, or evaluation items ``{"image": at test_scale, "label": at its own size,
    "index"}`` (None for an unreadable image: it is left out of the evaluation).

    An unreadable training image is replaced by the next readable one (the batch keeps its
    size), as the SSL views do."""

    def __init__(self, data: SegmentationSet, pipeline: Pipeline, *, train: bool, seed: int = 0) -> None:
        self.data, self.pipeline, self.train, self.seed = data, pipeline, train, seed
        SharedEpoch.__init__(self)

    def __len__(self) -> int:
        return len(self.data)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = decode_image(self.data.images[index])
        label = self.data.labels(index)
        if label.shape != (image.height, image.width):  # e.g. an EXIF rotation the label map does not have: skipped
            raise DecodeError(describe_source(self.data.images[index]), ValueError(
                f"its label map is {label.shape[1]}x{label.shape[0]}, the (upright) image {image.width}x{image.height}"))
        return np.asarray(image), label

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        j, read, skipped = first_readable(index, len(self), self._read, replace=self.train)
        if j is None:
            return None
        image, label = read
        if not self.train:
            size = rescale_size(image.shape[1], image.shape[0], self.pipeline.test_scale)
            return {"image": self._normalise(resize_image(image, size)), "label": torch.from_numpy(label.astype(np.int64)),
                    "index": j}
        item = self._augment(image, label, np.random.default_rng([self.seed, self.epoch, index]))
        return {**item, "skipped": skipped}

    def _augment(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> dict[str, Tensor]:
        p = self.pipeline
        size = rescale_size(image.shape[1], image.shape[0], p.scale, rng.uniform(*p.ratio_range))
        pixels, label = resize_image(image, size), resize_label(label, size)
        top, left, bottom, right = crop_box(label, p.crop_size, p.cat_max_ratio, rng)
        pixels, label = pixels[top:bottom, left:right], label[top:bottom, left:right]
        if rng.random() < p.flip:
            pixels, label = pixels[:, ::-1], label[:, ::-1]
        if p.photometric:
            pixels = photometric_distortion(np.ascontiguousarray(pixels), rng)
        image_t = self._normalise(pixels)
        out = torch.zeros(3, *p.crop_size)
        labels = torch.full(p.crop_size, IGNORE, dtype=torch.int64)
        out[:, : image_t.shape[1], : image_t.shape[2]] = image_t
        labels[: label.shape[0], : label.shape[1]] = torch.from_numpy(label.astype(np.int64))
        return {"image": out, "label": labels}

    def _normalise(self, pixels: np.ndarray) -> Tensor:
        x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)  # a writable copy
        mean = torch.tensor(self.pipeline.mean).view(3, 1, 1)
        return x.sub_(mean).div_(torch.tensor(self.pipeline.std).view(3, 1, 1))


def collate_segmentation(items: list[dict]) -> dict[str, Any]:
    """Training items stacked (one crop size); the unreadable files they stand in for, listed."""
    return {"image": torch.stack([i["image"] for i in items]), "label": torch.stack([i["label"] for i in items]),
            "skipped": [name for i in items for name in i["skipped"]]}


def load_segmentation_set(spec: str, split: str) -> SegmentationSet:
    """Images and label maps of ``split`` of any data spec whose source has them (see
    :data:`scene_ssl.data.sources.SOURCES`: ``scenes``, ``cityscapes:``, ``voc:``, ``ade20k:``).

    Example:
        >>> load_segmentation_set("folder:/tmp", "train")
        Traceback (most recent call last):
        ...
        ValueError: folder:/tmp has no label maps: segmentation needs scenes, coco:<path>, voc:<VOCdevkit>...
    """
    source, arg = parse_spec(spec)
    if source.segmentation is None:
        raise ValueError(f"{spec} has no label maps: segmentation needs {spec_usage(can='segmentation')}")
    return source.segmentation(arg, split)
