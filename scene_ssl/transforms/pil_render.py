"""Render views on the CPU with PIL (the data-loader-worker path).

One decoded image, one ``Image.resize(box=...)`` per view (crop and resize in one call,
straight from the source pixels), colour as one matrix ``convert`` per view, PIL's C blur,
solarize and flip, and uint8 HWC out: no float conversion in the worker and 4x less to
send to the main process than float32.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageStat
from torch import Tensor

import torchvision.transforms.functional as TF

from .color import jitter_affine
from .pipeline import ViewParams, ViewPipeline

__all__ = ["render_views_pil"]

_RESAMPLE = Image.Resampling.BILINEAR
_TV_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)  # JITTER_OPS order


def _matrix12(A: np.ndarray, t: np.ndarray) -> tuple[float, ...]:
    """(3, 3), (3,) -> PIL's 12-tuple ``(a, b, c, offset)`` per output channel."""
    return tuple(float(v) for row, off in zip(A, t) for v in (*row, off))


_SOLARIZE_LUTS: dict[int, list[int]] = {}


def _solarize(view: Image.Image, threshold: int) -> Image.Image:
    """PIL's ``ImageOps.solarize`` (invert pixels >= threshold) with the LUT built once."""
    lut = _SOLARIZE_LUTS.get(threshold)
    if lut is None:
        lut = _SOLARIZE_LUTS[threshold] = [255 - i if i >= threshold else i for i in range(256)] * 3
    return view.point(lut)


def _jitter_sequential(view: Image.Image, params: ViewParams) -> Image.Image:
    """Exactly torchvision's ColorJitter on a PIL image: one op at a time (its own functions)."""
    for op in params.order[0].tolist():
        view = _TV_OPS[op](view, float(params.factors[0, op]))
    return view


def render_views_pil(image: Image.Image, params: ViewParams, pipelines: list[ViewPipeline]) -> Tensor:
    """Render N views of ``image`` (an RGB PIL image).

    Args:
        image: the decoded source image, mode RGB.
        params: N views' parameters, crops in ``image``'s pixel frame.
        pipelines: the pipeline of each view (size, solarize threshold, hue mode).

    Returns:
        uint8 tensor (N, S, S, 3) (channels last).
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    n = len(params)
    size = pipelines[0].size
    if any(p.size != size for p in pipelines):
        raise ValueError("all views rendered together must have the same size")
    crops = params.crop.tolist()
    views = [image.resize((size, size), _RESAMPLE, box=tuple(crops[i])) for i in range(n)]

    jitter, gray, blur, solarize, flip = (params.jitter.tolist(), params.gray.tolist(), params.blur.tolist(),
                                          params.solarize.tolist(), params.flip.tolist())
    fast = [i for i in range(n) if (gray[i] or jitter[i]) and not (jitter[i] and pipelines[i].hue_mode == "hsv")]
    if fast:
        # the mean colour only matters for contrast; a 4x-reduced copy gives it within rounding
        mean_rgb = torch.tensor([ImageStat.Stat(views[i].reduce(4)).mean for i in fast], dtype=torch.float64)
        A, t = jitter_affine(params.rows(fast), mean_rgb)
        for j, i in enumerate(fast):
            views[i] = views[i].convert("RGB", _matrix12(A[j].numpy(), t[j].numpy()))

    out = []
    for i in range(n):
        view = views[i]
        if jitter[i] and pipelines[i].hue_mode == "hsv":
            view = _jitter_sequential(view, params.row(i))
            if gray[i]:
                view = TF.rgb_to_grayscale(view, num_output_channels=3)
        if blur[i]:
            view = view.filter(ImageFilter.GaussianBlur(radius=float(params.sigma[i])))
        if solarize[i]:
            view = _solarize(view, pipelines[i].solarize_threshold)
        if flip[i]:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(view.tobytes())
    return torch.frombuffer(bytearray().join(out), dtype=torch.uint8).view(n, size, size, 3)  # one copy out of PIL
