"""Decode an image once, robustly: unreadable files are reported, never fatal."""
from __future__ import annotations

import io
import os
from typing import Any

from PIL import Image

__all__ = ["decode_image", "open_image", "load_image", "read_bytes", "dct_reduction", "describe_source", "DecodeError"]


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


def load_image(image: Image.Image, source: str = "<image>", reduction: int = 1) -> Image.Image:
    """Decode an opened image to RGB. ``reduction`` 2, 4 or 8 lets a JPEG decode at 1/2, 1/4
    or 1/8 of its size straight from the DCT (PIL's ``draft``): several times less work, and
    an area-like downscale, where the full resolution would be thrown away anyway.

    Raises:
        DecodeError: the file is truncated or corrupt.
    """
    try:
        if reduction > 1 and image.format == "JPEG":
            w, h = image.size
            image.draft("RGB", (max(1, -(-w // reduction)), max(1, -(-h // reduction))))
        image.load()  # force the full decode here: truncated files fail now, not in a transform
        return image if image.mode == "RGB" else image.convert("RGB")
    except Exception as e:
        raise DecodeError(source, e) from e


def decode_image(item: Any, max_side: int | None = None) -> Image.Image:
    """An RGB PIL image, fully decoded, from a path, raw bytes, an HF ``{"path", "bytes"}``
    dict or a PIL image.

    ``max_side`` lets large JPEGs decode at a reduced DCT scale (1/2, 1/4, 1/8), never below
    ``max_side`` on the longer side: a one-off downscale that is almost free.

    Raises:
        DecodeError: the file is missing, truncated, corrupt or not an image.
    """
    image = open_image(item)
    reduction = dct_reduction(max(image.size), max_side) if max_side is not None else 1
    return load_image(image, describe_source(item), reduction)
