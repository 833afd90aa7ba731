"""Decode JPEGs on the training device: workers pass bytes, the batch is decoded at once.

With ``--render device`` a data-loader worker only reads each
file's bytes and its JPEG header (the size the views are drawn for, with the same sampler and
seeding as every other path); the training process decodes the whole batch with
``torchvision.io.decode_jpeg`` on its device (nvJPEG on a GPU, batched; libjpeg-turbo on the
CPU, which is how the tests run it), then the device renderer cuts the views. What nvJPEG
does not take is decoded in the worker as before: PNGs and other formats, and CMYK JPEGs.
The rule of :mod:`.decode` holds here too: grayscale JPEGs come out with 3 channels, the
EXIF orientation read in the worker turns the decoded pixels on the device, and an image
larger than the longest side is resized (antialiased) on the device, its crops with it. A
JPEG that fails on the device is decoded again with PIL; one that fails there too is
replaced by another image of the batch and named in ``skipped``, so the batch keeps its size.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg

from .decode import DecodeError, decode_image, describe_source, open_image, orientation, oriented_size, read_bytes

__all__ = ["read_encoded", "decode_batch"]

#: JPEG colour modes nvJPEG turns into RGB the way PIL does
_DEVICE_MODES = ("RGB", "L")


def read_encoded(item: Any, max_side: int | None = None) -> tuple[np.ndarray | None, Any, int, tuple[int, int]]:
    """``(jpeg bytes or None, the decoded image when not a device JPEG, its EXIF orientation,
    (width, height) upright)``: the views are drawn for the upright size. A decoded image is
    upright already and at most ``max_side``.

    Raises:
        DecodeError: the file is missing or its header is not an image's.
    """
    image = open_image(item)
    size = oriented_size(image)
    if image.format == "JPEG" and image.mode in _DEVICE_MODES:
        try:
            data = read_bytes(item)
        except OSError as e:
            raise DecodeError(describe_source(item), e) from e
        return np.frombuffer(data, dtype=np.uint8), None, orientation(image), size
    return None, decode_image(item, max_side), 1, size


def _upright(image: Tensor, turn: int) -> Tensor:
    """(3, H, W) turned by EXIF orientation ``turn`` (as PIL's ``exif_transpose``)."""
    if turn in (2, 4, 5, 7):  # a mirror: flip, then (5, 7) turn
        image = image.flip(-1 if turn in (2, 5, 7) else -2)
    quarter_turns = {3: 2, 5: 1, 6: 3, 7: 3, 8: 1}.get(turn, 0)  # counter-clockwise
    return torch.rot90(image, quarter_turns, dims=(1, 2)) if quarter_turns else image


def _within(image: Tensor, max_side: int | None) -> Tensor:
    """(3, H, W) uint8 resized (antialiased) so that its longer side is at most ``max_side``."""
    h, w = image.shape[1:]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0] \
        .round_().clamp_(0, 255).to(torch.uint8)


def _decode_one(data: np.ndarray, device: torch.device) -> tuple[Tensor | None, bool]:
    """One JPEG on the device, else with PIL on the host; (None, ...) if neither can. The flag
    says whether the pixels are upright already (PIL's decode applies the EXIF orientation)."""
    try:
        return decode_jpeg(torch.from_numpy(data.copy()), mode=ImageReadMode.RGB, device=device), False
    except RuntimeError:
        pass
    try:
        return torch.from_numpy(np.array(decode_image(data.tobytes()))).permute(2, 0, 1).to(device), True
    except DecodeError:
        return None, False


def _device_decoded(encoded: list, device: torch.device) -> tuple[list[Tensor | None], list[bool]]:
    """The batch's JPEGs decoded on ``device`` (one batched call, one at a time if a file fails
    it): (3, H, W) uint8 or None, and whether each is upright already."""
    images: list[Tensor | None] = [None] * len(encoded)
    upright = [False] * len(encoded)
    jpegs = [i for i, e in enumerate(encoded) if e is not None]
    if jpegs:
        try:  # one batched call: nvJPEG decodes them together
            out = decode_jpeg([torch.from_numpy(encoded[i].copy()) for i in jpegs], mode=ImageReadMode.RGB, device=device)
            for i, img in zip(jpegs, out):
                images[i] = img
        except RuntimeError:  # a corrupt file fails the whole call: one at a time
            for i in jpegs:
                images[i], upright[i] = _decode_one(encoded[i], device)
    return images, upright


def decode_batch(batch: dict[str, Any], device: torch.device | str, max_side: int | None = None) -> dict[str, Any]:
    """Decode a :func:`~scene_ssl.data.views.collate_encoded` batch on ``device``; return it as
    :func:`~scene_ssl.data.collate_decoded` would have (``images`` uint8 (B, H_max, W_max, 3),
    each image upright, at most ``max_side``, top-left in its slot, its views' crops in its
    pixels), ready for the device renderer. An image that cannot be decoded is replaced by
    another of the batch, with that image's crops, and named in ``skipped``."""
    device = torch.device(device)
    n = len(batch["encoded"])
    images, upright = _device_decoded(batch["encoded"], device)
    crop = batch["params"]["crop"].clone()  # view-major rows: row k * n + i is view k of image i
    turns = batch.get("turns", [1] * n)
    for i, img in enumerate(images):
        if batch["decoded"][i] is not None:  # decoded in the worker: upright, within max_side, crops in its pixels
            images[i] = batch["decoded"][i].to(device).permute(2, 0, 1)
        elif img is not None:  # the views were drawn for the upright full size: turn, cap, and scale the crops
            turn = 1 if upright[i] else turns[i]
            drawn = img.shape[1:] if turn not in (5, 6, 7, 8) else img.shape[2:0:-1]  # (h, w) upright
            images[i] = _within(_upright(img, turn), max_side)
            h, w = images[i].shape[1:]
            crop[i::n] *= torch.tensor([w / drawn[1], h / drawn[0]] * 2, dtype=crop.dtype, device=crop.device)
    skipped = list(batch["skipped"])
    good = next((j for j, img in enumerate(images) if img is not None), None)
    if good is None:
        raise RuntimeError(f"no image of the batch could be decoded (first: {batch['names'][0]})")
    for i, img in enumerate(images):
        if img is None:  # undecodable: another image of the batch takes its place, with its crops
            images[i], crop[i::n] = images[good], crop[good::n]
            skipped.append(batch["names"][i])
    h = max(img.shape[1] for img in images)
    w = max(img.shape[2] for img in images)
    padded = torch.stack([F.pad(img, (0, w - img.shape[2], 0, h - img.shape[1])) for img in images])  # (B, 3, H, W)
    return {**batch, "images": padded.permute(0, 2, 3, 1), "skipped": skipped, "params": {**batch["params"], "crop": crop}}
