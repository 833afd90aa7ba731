"""Reading the multi-view batch layout shared by every method."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor


def get_views(batch: Any, expected: int, method: str) -> list[Tensor]:
    """Return the batch's views as a list of ``expected`` tensors (B, C, H, W).

    ``batch`` is a dict with a ``"views"`` entry, or the views themselves: a list / tuple of
    4-D tensors, or one stacked tensor (V, B, C, H, W).
    """
    views = batch["views"] if isinstance(batch, dict) else batch
    if isinstance(views, Tensor):
        if views.ndim != 5:
            raise ValueError(f"{method}: stacked views must be (V, B, C, H, W), got shape {tuple(views.shape)}")
        views = list(views.unbind(0))
    if not isinstance(views, Sequence) or not all(isinstance(v, Tensor) for v in views):
        raise ValueError(f"{method}: batch['views'] must be a list of tensors, got {type(views).__name__}")
    if len(views) != expected:
        raise ValueError(f"{method} expects {expected} views per image, got {len(views)}")
    shape = views[0].shape
    if len(shape) != 4:
        raise ValueError(f"{method}: each view must be (B, C, H, W), got shape {tuple(shape)}")
    for i, v in enumerate(views):
        if v.shape != shape:
            raise ValueError(f"{method}: view {i} has shape {tuple(v.shape)}, view 0 has {tuple(shape)}")
        if not v.is_floating_point():
            raise ValueError(
                f"{method}: view {i} has dtype {v.dtype}; normalise uint8 views to float first "
                "(scene_ssl.transforms.ViewNormalizer)"
            )
    return list(views)


def stack_pairs(views: list[Tensor], blocks: int) -> tuple[Tensor, Tensor]:
    """``[t1(B1..Bn), t2(B1..Bn)]`` -> (x1, x2), each (n·B, C, H, W), block-major."""
    return torch.cat(views[:blocks], dim=0), torch.cat(views[blocks:], dim=0)


def batch_extras(batch: Any) -> tuple[Tensor | None, bool, Tensor | None]:
    """``(batch["index"], batch["diagnostics"], batch["label_table"])`` of a dict batch (see
    :mod:`scene_ssl.models.method`), ``(None, False, None)`` otherwise."""
    if not isinstance(batch, dict):
        return None, False, None
    return batch.get("index"), bool(batch.get("diagnostics", False)), batch.get("label_table")
