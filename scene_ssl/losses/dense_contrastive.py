"""DenseCL's dense contrastive loss: InfoNCE between matched locations of two views."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validate import positive_float
from .functional import info_nce

__all__ = ["dense_correspondence", "DenseContrastiveLoss"]


@torch.no_grad()
def dense_correspondence(q_map: Tensor, k_map: Tensor) -> Tensor:
    """For each query location, the key location whose feature is most similar (cosine).

    Args:
        q_map: (B, C, N) features of the query view at N locations. k_map: (B, C, M), the key view's.

    Returns:
        (B, N) long: ``argmax_m cos(q_map[b, :, n], k_map[b, :, m])``. No gradient.

    Example:
        >>> q = torch.randn(1, 8, 4)
        >>> dense_correspondence(q, q[:, :, [2, 0, 3, 1]]).tolist()  # key location m holds query location perm[m]
        [[1, 3, 0, 2]]
    """
    if q_map.ndim != 3 or k_map.ndim != 3 or q_map.shape[:2] != k_map.shape[:2]:
        raise ValueError(f"dense_correspondence expects (B, C, N) and (B, C, M) maps, got {tuple(q_map.shape)} and "
                         f"{tuple(k_map.shape)}")
    q = F.normalize(q_map.float(), dim=1)
    k = F.normalize(k_map.float(), dim=1)
    return torch.einsum("bcn,bcm->bnm", q, k).argmax(dim=2)  # (B, N)


class DenseContrastiveLoss(nn.Module):
    """DenseCL's dense loss (Wang et al., CVPR 2021): each query location's positive is the
    key-view location whose *backbone* feature is most similar (:func:`dense_correspondence`,
    no gradient), its negatives a queue; InfoNCE averaged over all B x N locations.

    Args:
        temperature: softmax temperature T (DenseCL: 0.2).

    Shapes: ``q_grid`` (B, D, N) and ``k_grid`` (B, D, M): the dense embeddings of the two views;
    ``q_map`` (B, C, N) and ``k_map`` (B, C, M): the backbone maps that match the locations;
    ``queue`` (K, D). Embeddings are L2-normalised inside.

    Example:
        >>> loss_fn = DenseContrastiveLoss(0.2)
        >>> grid, fmap, queue = torch.randn(2, 8, 4), torch.randn(2, 16, 4), torch.randn(32, 8)
        >>> bool(loss_fn(grid, grid, fmap, fmap, queue) < loss_fn(grid, -grid, fmap, fmap, queue))
        True
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = positive_float("temperature", temperature)

    def forward(self, q_grid: Tensor, k_grid: Tensor, q_map: Tensor, k_map: Tensor, queue: Tensor) -> Tensor:
        match = dense_correspondence(q_map, k_map)  # (B, N): the key location of each query location
        d = k_grid.shape[1]
        k_matched = k_grid.gather(2, match.unsqueeze(1).expand(-1, d, -1))  # (B, D, N), aligned with the query's
        return info_nce(q_grid.transpose(1, 2).reshape(-1, d), k_matched.transpose(1, 2).reshape(-1, d), queue,
                        self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
