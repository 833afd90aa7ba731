"""DenseCL's dense projection neck."""
from __future__ import annotations

import torch  # noqa: F401 (its example)
from torch import Tensor, nn

__all__ = ["DenseProjectionHead"]


class DenseProjectionHead(nn.Module):
    """DenseCL's dense neck: ``Conv1x1(C, hidden) - ReLU - Conv1x1(hidden, out)`` at every
    location of a feature map (B, C, H, W) -> (B, out, H, W) (no BN, as the official neck).

    Example:
        >>> DenseProjectionHead(32, 64, 16)(torch.randn(2, 32, 3, 3)).shape
        torch.Size([2, 16, 3, 3])
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_dim, hidden_dim, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden_dim, out_dim, 1))

    def forward(self, fmap: Tensor) -> Tensor:
        return self.net(fmap)
