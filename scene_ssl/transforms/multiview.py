"""Multi-view transforms: decode once, cut every view from the same pixels."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .geometry import block_boxes, check_overlap
from .pil_render import render_views_pil
from .pipeline import ViewParams, ViewPipeline

__all__ = ["MultiViewTransform", "BlockwiseTransform", "MoCoV2Transform", "bam_view_transforms", "moco_v2_pipeline", "scaled_blur_sigma"]


def to_pil(image) -> Image.Image:
    """PIL image, HWC uint8 array, or CHW / HWC uint8 tensor -> RGB PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, Tensor):
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = image.permute(1, 2, 0)
        image = image.cpu().numpy()
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        return Image.fromarray(image).convert("RGB")
    raise ValueError(f"expected a PIL image or a uint8 image array/tensor, got {type(image).__name__}")


class MultiViewTransform:
    """A list of (pipeline, region) pairs: view i is ``pipelines[i]`` applied to ``region i``.

    Subclasses define :meth:`regions`. Calling the transform on an image returns the views
    as uint8 tensors (3, S, S) (channels-last memory, ready for ``channels_last`` models);
    :meth:`sample` returns only their random parameters, for the device-side renderer.
    """

    pipelines: list[ViewPipeline]

    @property
    def num_views(self) -> int:
        return len(self.pipelines)

    @property
    def size(self) -> int:
        return self.pipelines[0].size

    def regions(self, width: int, height: int) -> list[tuple[float, float, float, float]]:
        raise NotImplementedError

    def sample(self, width: int, height: int, generator: torch.Generator | None = None) -> ViewParams:
        """Parameters of every view of a ``width`` x ``height`` image, in view order."""
        regions = torch.tensor(self.regions(width, height), dtype=torch.float64)
        parts, i = [], 0
        while i < len(self.pipelines):  # runs of the same pipeline are sampled together
            j = i
            while j < len(self.pipelines) and self.pipelines[j] is self.pipelines[i]:
                j += 1
            parts.append(self.pipelines[i].sample(regions[i:j], generator))
            i = j
        return ViewParams.cat(parts)

    def render(self, image: Image.Image, params: ViewParams) -> Tensor:
        """uint8 (V, S, S, 3) views of ``image`` for the given parameters."""
        return render_views_pil(image, params, self.pipelines)

    def __call__(self, image) -> list[Tensor]:
        image = to_pil(image)
        views = self.render(image, self.sample(*image.size))  # (V, S, S, 3)
        return list(views.permute(0, 3, 1, 2).unbind(0))  # V x (3, S, S), channels-last strides


def scaled_blur_sigma(size: int, reference: int = 224) -> tuple[float, float]:
    """The papers' blur σ range, (0.1, 2.0) px for 224 px views, scaled to ``size`` px views.

    Example:
        >>> scaled_blur_sigma(224), scaled_blur_sigma(112)
        ((0.1, 2.0), (0.05, 1.0))
    """
    return (0.1 * size / reference, 2.0 * size / reference)


def moco_v2_pipeline(size: int = 224, **overrides) -> ViewPipeline:
    """MoCo v2's augmentation: RRC(0.2-1), jitter (0.4, 0.4, 0.4, 0.1) p=0.8, gray 0.2, blur 0.5, flip.

    The blur σ range is the paper's (0.1-2 px) scaled to ``size`` (:func:`scaled_blur_sigma`).
    """
    return ViewPipeline(size=size, **{"blur_sigma": scaled_blur_sigma(size), **overrides})


class BlockwiseTransform(MultiViewTransform):
    """BAM's block-wise augmentation: 4 overlapping blocks, two pipelines per block.

    Returns 8 views ``[t1(B1..B4), t2(B1..B4)]``. Block boxes follow
    :func:`~scene_ssl.transforms.block_boxes`, rounded to whole pixels as PIL's ``crop``
    does in the authors' loader; each view's RandomResizedCrop is taken inside its block,
    directly from the decoded image. ``blocks=1`` uses the whole image (SimSiam's views).

    ``t1`` / ``t2`` are :class:`ViewPipeline` objects (fast path), or any callable on a PIL
    image (e.g. a torchvision ``Compose``), which then receives each cropped block.

    Example:
        >>> t1, t2 = bam_view_transforms(size=32)
        >>> views = BlockwiseTransform(t1, t2, overlap=0.2)(Image.new("RGB", (80, 60)))
        >>> len(views), tuple(views[0].shape), views[0].dtype
        (8, (3, 32, 32), torch.uint8)
    """

    def __init__(self, t1: ViewPipeline | Callable, t2: ViewPipeline | Callable, overlap: float = 0.2, blocks: int = 4):
        self.overlap = check_overlap(overlap)
        if blocks not in (1, 4):
            raise ValueError(f"blocks must be 1 (whole image) or 4, got {blocks!r}")
        self.blocks = blocks
        self.t1, self.t2 = t1, t2
        self._fast = isinstance(t1, ViewPipeline) and isinstance(t2, ViewPipeline)
        if self._fast and t1.size != t2.size:
            raise ValueError(f"t1 and t2 must produce the same size, got {t1.size} and {t2.size}")
        self.pipelines = [t1] * blocks + [t2] * blocks if self._fast else []

    @property
    def num_views(self) -> int:
        return 2 * self.blocks

    def regions(self, width: int, height: int) -> list[tuple[float, float, float, float]]:
        if self.blocks == 1:
            boxes = [(0.0, 0.0, float(width), float(height))]
        else:
            boxes = [tuple(float(round(v)) for v in b) for b in block_boxes(width, height, self.overlap)]
        return boxes * 2

    def __call__(self, image) -> list[Tensor]:
        if self._fast:
            return super().__call__(image)
        image = to_pil(image)
        boxes = self.regions(*image.size)
        crops = [image.crop(tuple(int(v) for v in b)) for b in boxes[: self.blocks]]
        return [self.t1(c) for c in crops] + [self.t2(c) for c in crops]


class MoCoV2Transform(MultiViewTransform):
    """Two MoCo v2 views of the whole image: ``[v1, v2]`` uint8 tensors (3, size, size).

    Example:
        >>> v1, v2 = MoCoV2Transform(size=32)(Image.new("RGB", (50, 40), "red"))
        >>> tuple(v1.shape), v1.dtype
        ((3, 32, 32), torch.uint8)
    """

    def __init__(self, size: int = 224, **pipeline_overrides) -> None:
        pipeline = moco_v2_pipeline(size, **pipeline_overrides)
        self.pipelines = [pipeline, pipeline]

    def regions(self, width: int, height: int) -> list[tuple[float, float, float, float]]:
        return [(0.0, 0.0, float(width), float(height))] * 2


def bam_view_transforms(size: int = 224, **overrides) -> tuple[ViewPipeline, ViewPipeline]:
    """BAM's two asymmetric pipelines (the authors' ``augmentation1`` / ``augmentation2``).

    Both: RRC(size, 0.2-1), jitter (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale 0.2, flip 0.5;
    t1 blurs with p=0.5 and solarizes (threshold 128) with p=0.5, t2 with 0.1 and 0.2; the
    blur σ range is the authors' (0.1-2 px at 224 px) scaled to ``size``.
    ``overrides`` (e.g. ``hue_mode="hsv"``, ``scale=(0.1, 1)``) apply to both.
    """
    sigma = scaled_blur_sigma(size)
    t1 = ViewPipeline(size=size, **{"blur_p": 0.5, "solarize_p": 0.5, "blur_sigma": sigma, **overrides})
    t2 = ViewPipeline(size=size, **{"blur_p": 0.1, "solarize_p": 0.2, "blur_sigma": sigma, **overrides})
    return t1, t2
