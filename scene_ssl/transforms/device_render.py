"""Render views on the training device, batched over every view of every image.

The data-loader workers only decode (uint8) and draw each view's random parameters with
the same sampler as the CPU path (:meth:`MultiViewTransform.sample`); this module then does,
for all B x V views at once and without a host synchronisation:

- crop + resize: ``torchvision.ops.roi_align`` from per-view boxes, with adaptive sampling
  (each output pixel averages ceil(box / size) samples per side: area-like antialiasing
  when shrinking, bilinear when enlarging);
- colour jitter + grayscale: one 3x4 colour matrix per view (``hue_mode="yiq"``), or the
  ops one at a time with torchvision's HSV hue and clipping after each (``"hsv"``);
- Gaussian blur: per-view σ, one grouped separable convolution (views drawn without blur
  get a unit kernel);
- solarize, horizontal flip, normalisation: masked element-wise ops.

The same code runs on the CPU, which is how the test-suite checks it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from .color import CONTRAST, HUE, _consts, _linear_parts, jitter_affine, rgb_hue_shift_hsv
from .pipeline import ViewParams, ViewPipeline

__all__ = ["render_views_torch", "DeviceViewRenderer", "PARAM_FIELDS"]

PARAM_FIELDS = ("crop", "jitter", "factors", "order", "gray", "blur", "sigma", "solarize", "flip")


def _crop_resize(images: Tensor, image_index: Tensor, crop: Tensor, size: int) -> Tensor:
    """(B, H, W, 3) uint8 images -> (N, 3, S, S) float32 in [0, 1], one crop per row.

    In float32 on every device: ``roi_align`` computes its sampling positions in the input's
    type, and half precision rounds a crop's corner to the nearest whole pixel from 1024 px
    and to an even one from 2048 px (the batch's memory is bounded by capping each image's
    decoded size instead)."""
    x = images.permute(0, 3, 1, 2).float().div_(255)  # (B, 3, H, W), channels-last memory
    boxes = torch.cat([image_index[:, None].float(), crop.float()], dim=1)  # (N, 5)
    # aligned=True: a box (x0, y0, x1, y1) covers pixels x0 .. x1 exactly, as PIL's resize(box=)
    return roi_align(x, boxes, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _apply_affine(x: Tensor, A: Tensor, t: Tensor) -> Tensor:
    return (torch.einsum("nij,njhw->nihw", A, x) + t[:, :, None, None]).clamp_(0, 1)


def _jitter_sequential(x: Tensor, params: ViewParams) -> Tensor:
    """torchvision's ColorJitter, batched: one op per step, clipped after each."""
    n = x.shape[0]
    parts = _linear_parts(params.factors.to(x.dtype))  # (N, 4, 3, 3)
    w = _consts(x.dtype, x.device)[0]
    rows = torch.arange(n, device=x.device)
    on = params.jitter[:, None, None, None]
    for step in range(4):
        op = params.order[:, step]
        mean_gray = torch.einsum("nchw,c->n", x, w) / (x.shape[2] * x.shape[3])
        t = torch.where(op == CONTRAST, (1 - params.factors[:, CONTRAST].to(x.dtype)) * mean_gray, torch.zeros_like(mean_gray))
        linear = _apply_affine(x, parts[rows, op], t[:, None].expand(n, 3))
        hue = rgb_hue_shift_hsv(x, params.factors[:, HUE].to(x.dtype))
        stepped = torch.where((op == HUE)[:, None, None, None], hue, linear)
        x = torch.where(on, stepped, x)
    return x


def _gaussian_blur(x: Tensor, sigma: Tensor, apply: Tensor, max_sigma: float) -> Tensor:
    """Separable Gaussian with a per-view σ; rows with ``apply`` False are left unchanged."""
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (offsets == 0).to(x.dtype).expand(n, -1)
    kernel = torch.where(apply[:, None], kernel, identity)  # (N, K)
    k = kernel.repeat_interleave(c, dim=0)  # (N*C, K)
    y = x.reshape(1, n * c, h, w)
    pad = min(radius, h - 1, w - 1)
    if pad < radius:  # reflect padding needs a border this wide; shrink the kernel to fit
        k = k[:, radius - pad : radius + pad + 1]
        k = k / k.sum(dim=1, keepdim=True)
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), k[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def render_views_torch(images: Tensor, image_index: Tensor, params: ViewParams, pipelines: list[ViewPipeline],
                       solarize_threshold: Tensor | None = None) -> Tensor:
    """Render N views from a padded uint8 batch.

    Args:
        images: (B, H, W, 3) uint8, each image at the top-left of its (zero-padded) slot.
        image_index: (N,) which image each view is cut from.
        params: N views' parameters (on the same device), crops in each image's pixels.
        pipelines: the pipeline of each view (N entries; size, blur range, thresholds, hue mode).
        solarize_threshold: (N,) thresholds in [0, 1] already on the device (else built
            from ``pipelines``, a small host-to-device copy).

    Returns:
        (N, 3, S, S) float views in [0, 1].
    """
    size = pipelines[0].size
    if any(p.size != size for p in pipelines):
        raise ValueError("all views rendered together must have the same size")
    if any(p.hue_mode != pipelines[0].hue_mode for p in pipelines):
        raise ValueError("all views rendered together must use the same hue_mode")
    x = _crop_resize(images, image_index, params.crop, size)  # (N, 3, S, S)
    dtype = x.dtype
    if pipelines[0].hue_mode == "yiq":
        mean_rgb = x.mean(dim=(2, 3))  # contrast needs each view's mean colour before jitter
        A, t = jitter_affine(params, mean_rgb)
        x = _apply_affine(x, A.to(dtype), t.to(dtype))
    else:
        x = _jitter_sequential(x, params)
        w = _consts(dtype, x.device)[0]
        gray = torch.einsum("nchw,c->nhw", x, w)[:, None].expand_as(x)
        x = torch.where(params.gray[:, None, None, None], gray, x)
    x = _gaussian_blur(x, params.sigma, params.blur, max(p.blur_sigma[1] for p in pipelines))
    if solarize_threshold is None:
        solarize_threshold = torch.tensor([p.solarize_threshold / 255.0 for p in pipelines], dtype=dtype).to(x.device)
    threshold = solarize_threshold.to(dtype)[:, None, None, None]
    x = torch.where(params.solarize[:, None, None, None] & (x >= threshold - 1e-6), 1 - x, x)
    x = torch.where(params.flip[:, None, None, None], x.flip(-1), x)
    return x


class DeviceViewRenderer(nn.Module):
    """Turn a decoded batch (see :func:`scene_ssl.data.collate_decoded`) into normalised views.

    ``forward(batch)`` returns V tensors (B, 3, S, S), channels-last, in the same order and
    layout as the CPU path's views after :class:`~scene_ssl.transforms.ViewNormalizer`.
    The batch's parameter rows are view-major (row ``k * B + b`` is view k of image b), so
    each view is rendered into one contiguous block.
    """

    def __init__(self, pipelines: list[ViewPipeline], mean, std) -> None:
        super().__init__()
        self.pipelines = list(pipelines)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        thresholds = torch.tensor([p.solarize_threshold / 255.0 for p in self.pipelines], dtype=torch.float32)
        self.register_buffer("thresholds", thresholds, persistent=False)

    def forward(self, batch: dict) -> list[Tensor]:
        images = batch["images"]  # (B, H, W, 3) uint8
        b, v = images.shape[0], len(self.pipelines)
        params = ViewParams(**{k: batch["params"][k] for k in PARAM_FIELDS})  # (V*B) rows, view-major
        index = torch.arange(b, device=images.device).repeat(v)
        pipelines = [p for p in self.pipelines for _ in range(b)]
        x = render_views_torch(images, index, params, pipelines, self.thresholds.repeat_interleave(b))
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)  # (V*B, 3, S, S)
        return list(x.split(b))  # V x (B, 3, S, S), each one contiguous channels-last block
