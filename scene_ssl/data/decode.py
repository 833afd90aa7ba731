"""Decode an image once, robustly: unreadable files are reported, never fatal.

One rule for every format and every path (the workers' PIL decode, the DCT-reduced JPEG
decode, the training device's JPEG decode, the probes and detection):

- **8-bit RGB**: 16-bit (and 32-bit integer) images are scaled to 8 bits (``>> 8``, the top
  byte), float images from [0, 1] (or [0, 255] when any value exceeds 1); the alpha channel is
  dropped, as torchvision and timm do (``convert("RGB")``); palette, grey, CMYK become RGB.
- **EXIF orientation applied**: the pixels are turned as the camera says, and the size the
  views are drawn for is the turned one (:func:`oriented_size`).
- **A longest side** (``max_side``): a larger image is decoded smaller (a JPEG straight from
  its DCT at 1/2, 1/4, 1/8) and then resized (antialiased) to it, so that one huge photo costs
  no more memory than the batch allows.
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["decode_image", "open_image", "load_image", "read_bytes", "dct_reduction", "describe_source", "DecodeError",
           "orientation", "oriented_size", "to_rgb", "ORIENTATION_TURNS"]

#: EXIF orientation -> the PIL transpose that undoes it (1: none)
ORIENTATION_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                     5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                     8: Image.Transpose.ROTATE_90}
_SIDEWAYS = (5, 6, 7, 8)  # the orientations that swap width and height


class DecodeError(Exception):
    """An image that could not be decoded; ``source`` names the file."""

    def __init__(self, source: str, cause: BaseException) -> None:
        super().__init__(f"cannot decode {source}: {type(cause).__name__}: {cause}")
        self.source = source


def describe_source(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("path") or "<bytes>")
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return f"<{type(item).__name__}>"


def open_image(item: Any) -> Image.Image:
    """Open an image without decoding its pixels (size and mode come from the header):
    from a path, raw bytes, an HF ``{"path", "bytes"}`` dict or a PIL image.

    Raises:
        DecodeError: the file is missing or not an image.
    """
    source = describe_source(item)
    try:
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, dict):
            data = item.get("bytes")
            fp = io.BytesIO(data) if data else item.get("path")
        elif isinstance(item, (bytes, bytearray)):
            fp = io.BytesIO(item)
        else:
            fp = item
        return Image.open(fp)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        raise DecodeError(source, e) from e


def read_bytes(item: Any) -> bytes:
    """The file's bytes as stored (no decoding): an HF ``{"path", "bytes"}`` dict's bytes, else
    the file at the path (a dict's ``path`` or the item itself).

    Raises:
        OSError: the file cannot be read.
    """
    if isinstance(item, dict) and item.get("bytes"):
        return item["bytes"]
    with open(item["path"] if isinstance(item, dict) else item, "rb") as f:
        return f.read()


def dct_reduction(length: float, minimum: float, reduction: int = 1) -> int:
    """Double ``reduction`` (up to 8, JPEG's smallest DCT scale) while ``length`` divided by it
    stays at least ``minimum``.

    Example:
        >>> dct_reduction(640, 224), dct_reduction(640, 100), dct_reduction(640, 700)
        (2, 4, 1)
    """
    while reduction < 8 and length / (2 * reduction) >= minimum:
        reduction *= 2
    return reduction


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when it has none."""
    try:
        value = int(image.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block is no reason to lose the image
        return 1
    return value if value in ORIENTATION_TURNS else 1


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as it will be decoded: turned by its EXIF orientation."""
    w, h = image.size
    return (h, w) if orientation(image) in _SIDEWAYS else (w, h)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB by the module's rule: high bit depths scaled, alpha dropped.

    Example:
        >>> grey16 = Image.fromarray(np.full((2, 2), 40000, dtype=np.uint16))
        >>> np.asarray(to_rgb(grey16))[0, 0].tolist()  # 40000 >> 8
        [156, 156, 156]
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):  # I;16, I;16B, I (16-bit data as 32-bit ints)
        grey = np.right_shift(np.asarray(image, dtype=np.int64).clip(0, 65535), 8).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 255.0 if values.size and np.nanmax(values) > 1.0 else 1.0
        return Image.fromarray(np.nan_to_num(values / top * 255.0).clip(0, 255).round().astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # (PIL asks for this step before dropping a palette's alpha)
    return image.convert("RGB")


def load_image(image: Image.Image, source: str = "<image>", reduction: int = 1, max_side: int | None = None) -> Image.Image:
    """Decode an opened image to 8-bit RGB, turned by its EXIF orientation (the module's rule).
    ``reduction`` 2, 4 or 8 lets a JPEG decode at 1/2, 1/4 or 1/8 of its size straight from
    the DCT (PIL's ``draft``): several times less work, and an area-like downscale, where the
    full resolution would be thrown away anyway. ``max_side``: then resized (antialiased) so
    that its longer side is at most that.

    Raises:
        DecodeError: the file is truncated or corrupt.
    """
    try:
        turn = ORIENTATION_TURNS.get(orientation(image))
        if reduction > 1 and image.format == "JPEG":
            w, h = image.size
            image.draft("RGB", (max(1, -(-w // reduction)), max(1, -(-h // reduction))))
        image.load()  # force the full decode here: truncated files fail now, not in a transform
        image = to_rgb(image)
        if turn is not None:
            image = image.transpose(turn)
        if max_side is not None and max(image.size) > max_side:
            scale = max_side / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.Resampling.BILINEAR)  # PIL's downscaling filter widens with the scale: antialiased
        return image
    except Exception as e:
        raise DecodeError(source, e) from e


def decode_image(item: Any, max_side: int | None = None) -> Image.Image:
    """An 8-bit RGB PIL image, fully decoded and turned upright, from a path, raw bytes, an HF
    ``{"path", "bytes"}`` dict or a PIL image.

    ``max_side``: the longer side is at most that (a large JPEG decodes at a reduced DCT scale
    first, almost free; then a resize).

    Raises:
        DecodeError: the file is missing, truncated, corrupt or not an image.
    """
    image = open_image(item)
    reduction = dct_reduction(max(image.size), max_side) if max_side is not None else 1
    return load_image(image, describe_source(item), reduction, max_side)
