"""A ring buffer of L2-normalised features that lives in the state_dict."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributed import gather_no_grad

__all__ = ["FeatureQueue"]


class FeatureQueue(nn.Module):
    """FIFO queue of ``size`` feature vectors of dimension ``dim`` (MoCo's dictionary).

    The features, the write pointer and an aligned ``index`` (the dataset index of each
    row, -1 where none was given) are persistent buffers, so the queue is saved and
    restored with the model's ``state_dict`` and moves with ``.to(device)``. The index lets
    diagnostics ask *which* images the queue holds (e.g. whether MLS's pseudo-positives
    share a class with the query) at the cost of one integer per row.
    It starts with random unit vectors, as MoCo's does. :meth:`enqueue` gathers the rows
    of every process first (when ``torch.distributed`` is initialised), so all processes
    hold the same queue; it wraps around for any batch size and never reallocates.

    Example:
        >>> import torch
        >>> q = FeatureQueue(size=5, dim=2)
        >>> q.enqueue(torch.ones(3, 2)); q.enqueue(-torch.ones(3, 2))
        >>> int(q.ptr), q.features[:, 0].sign().tolist()
        (1, [-1.0, 1.0, 1.0, -1.0, -1.0])
    """

    features: Tensor
    ptr: Tensor
    index: Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"FeatureQueue needs size >= 1 and dim >= 1, got size={size}, dim={dim}")
        self.size, self.dim = size, dim
        self.register_buffer("features", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("index", torch.full((size,), -1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, x: Tensor, index: Tensor | None = None) -> None:
        """Write ``x`` (B, dim) after the newest entries, overwriting the oldest.

        ``x`` is stored as given (normalise it first if you want unit vectors). ``index``
        (B,) integer ids of the rows (e.g. dataset indices) are stored alongside, gathered
        the same way; without it the rows' index is -1. The pointer stays on the device:
        no host synchronisation.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"FeatureQueue(dim={self.dim}).enqueue expects (B, {self.dim}), got {tuple(x.shape)}")
        if index is not None and (index.shape != (x.shape[0],) or index.is_floating_point()):
            raise ValueError(f"FeatureQueue.enqueue: index must be an integer tensor of shape ({x.shape[0]},), "
                             f"got {index.dtype} {tuple(index.shape)}")
        x = gather_no_grad(x.detach()).to(self.features.dtype)
        n = x.shape[0]
        if index is None:  # every process passes None alike: nothing to gather
            index = torch.full((n,), -1, dtype=torch.long, device=self.index.device)
        else:
            index = gather_no_grad(index.to(device=self.index.device, dtype=torch.long))
        if n > self.size:  # only the newest `size` rows survive
            x, index = x[n - self.size :], index[n - self.size :]
        m = x.shape[0]
        start = self.ptr + (n - m)
        idx = (start + torch.arange(m, device=self.features.device)) % self.size
        self.features.index_copy_(0, idx, x)
        self.index.index_copy_(0, idx, index)
        self.ptr.copy_((self.ptr + n) % self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}"
