"""MoCo v2: a query encoder, a momentum key encoder and a queue of negatives."""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..heads import MoCoV2ProjectionHead
from ..losses import InfoNCELoss
from ..losses._validate import positive_int
from ._views import batch_extras, get_views
from .backbone import TimmBackbone
from .diagnostics import contrast_stats
from .distributed import gather_no_grad, rank_and_world_size, shared_permutation
from .momentum import momentum_update
from .queue import FeatureQueue

__all__ = ["MoCoV2"]


class MoCoV2(nn.Module):
    """MoCo v2 (Chen et al., 2020) on any timm backbone.

    ``forward(batch)`` takes two views (``batch["views"] = [x_q, x_k]``, each (B, C, H, W),
    normalised floats), updates the momentum encoder, computes the keys without gradient
    (with shuffle-BN across processes), the InfoNCE loss against the queue, and then
    enqueues the keys. It returns ``{"loss": ..., "loss_nce": ...}``; the values other than
    ``"loss"`` are detached 0-d tensors (call ``float()`` when logging, so that the step
    itself never waits on the device).

    ``batch["index"]`` (B,), when given, is stored in the queue beside each key (the
    dataset index of its image). ``batch["diagnostics"] = True`` adds the
    :func:`~scene_ssl.models.diagnostics.contrast_stats` of the step (``z_std``, ``z_norm``,
    ``sim_pos``, ``sim_neg``, ``queue_mean_norm``); the training loop asks for them at
    log steps only.

    Args:
        backbone: timm model name.
        dim: embedding size (128). hidden_dim: MLP width (2048).
        queue_size: K (65536). momentum: m (0.999); the training loop may schedule it by
            assigning ``self.momentum``. temperature: T (0.2).
        shuffle_bn: shuffle the key batch across processes (MoCo's shuffle-BN), so that a
            key's BN statistics come from other images than its query's.
        bn_splits: split each process's batch into this many BN groups (queries and
            shuffled keys alike), as MoCo's single-GPU demo does: on one process with
            ``bn_splits=1`` shuffle-BN cannot act, and the query and its key share batch
            statistics that set them apart from the queue's older keys.
        pretrained / backbone_kwargs: passed to :class:`TimmBackbone`.

    Example:
        >>> import torch
        >>> model = MoCoV2("test_resnet", dim=16, hidden_dim=32, queue_size=64)
        >>> out = model({"views": [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]})
        >>> sorted(out), out["loss"].requires_grad
        (['loss', 'loss_nce'], True)
    """

    num_views = 2

    def __init__(
        self,
        backbone: str = "resnet50",
        *,
        dim: int = 128,
        hidden_dim: int = 2048,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        shuffle_bn: bool = True,
        bn_splits: int = 1,
        pretrained: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        positive_int("dim", dim)
        positive_int("hidden_dim", hidden_dim)
        positive_int("queue_size", queue_size)
        positive_int("bn_splits", bn_splits)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.encoder = TimmBackbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
        self.projector = MoCoV2ProjectionHead(self.encoder.num_features, hidden_dim, dim)
        self.momentum_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.queue = FeatureQueue(queue_size, dim)
        self.criterion = InfoNCELoss(temperature)
        self.momentum = float(momentum)
        self.shuffle_bn = shuffle_bn
        self.bn_splits = bn_splits

    # -- the steps of one forward -------------------------------------------------------
    def _encode_queries(self, x_q: Tensor) -> tuple[Tensor, Tensor]:
        """(g_q, z_q); with ``bn_splits`` > 1 each group of the batch gets its own BN statistics."""
        chunks = x_q.chunk(self.bn_splits) if self.bn_splits > 1 else (x_q,)
        g_q = torch.cat([self.encoder(c) for c in chunks])  # (B, Dg)
        return g_q, self.projector(g_q)

    @torch.no_grad()
    def _keys(self, x_k: Tensor) -> tuple[Tensor, Tensor]:
        """Momentum-encoder features (g_k, z_k) of the key view, with shuffle-BN."""
        momentum_update(self.encoder, self.momentum_encoder, self.momentum)
        momentum_update(self.projector, self.momentum_projector, self.momentum)
        rank, world_size = rank_and_world_size()
        if not (self.shuffle_bn and (world_size > 1 or self.bn_splits > 1)):
            g_k = self.momentum_encoder(x_k)
            return g_k, self.momentum_projector(g_k)
        # Shuffle-BN: a key is normalised with other images than its query, so that BN's
        # batch statistics cannot tell the positive from the queue's older keys.
        b = x_k.shape[0]
        x_all = gather_no_grad(x_k)  # (W·B, C, H, W)
        perm = shared_permutation(x_all.shape[0], x_all.device)
        mine = x_all[perm[rank * b : (rank + 1) * b]]
        g_k = torch.cat([self.momentum_encoder(c) for c in mine.chunk(self.bn_splits)])
        z_k = self.momentum_projector(g_k)
        # undo the shuffle: row j of the gathered outputs belongs to sample perm[j]
        out = torch.cat([gather_no_grad(g_k), gather_no_grad(z_k)], dim=1)
        unshuffled = torch.empty_like(out)
        unshuffled[perm] = out
        unshuffled = unshuffled[rank * b : (rank + 1) * b]
        return unshuffled[:, : g_k.shape[1]], unshuffled[:, g_k.shape[1] :]

    def _losses(self, g_q: Tensor, z_q: Tensor, g_k: Tensor, z_k: Tensor) -> dict[str, Tensor]:
        loss_nce = self.criterion(z_q, z_k, self.queue.features)
        return {"loss": loss_nce, "loss_nce": loss_nce.detach()}

    @torch.no_grad()
    def _diagnostics(self, g_q: Tensor, z_q: Tensor, g_k: Tensor, z_k: Tensor, index: Tensor | None) -> dict[str, Tensor]:
        return contrast_stats(z_q, z_k, self.queue.features)

    @torch.no_grad()
    def _enqueue(self, g_k: Tensor, z_k: Tensor, index: Tensor | None) -> None:
        self.queue.enqueue(F.normalize(z_k.float(), dim=1), index)

    def forward(self, batch: Any) -> dict[str, Tensor]:
        x_q, x_k = get_views(batch, 2, type(self).__name__)
        index, diagnostics = batch_extras(batch)
        if self.bn_splits > 1 and x_q.shape[0] < 2 * self.bn_splits:
            raise ValueError(f"{type(self).__name__}: a batch of {x_q.shape[0]} cannot make {self.bn_splits} BN groups "
                             "of at least 2 images; lower bn_splits")
        g_q, z_q = self._encode_queries(x_q)  # (B, Dg), (B, Dz)
        g_k, z_k = self._keys(x_k)
        out = self._losses(g_q, z_q, g_k, z_k)
        if diagnostics:
            out.update(self._diagnostics(g_q, z_q, g_k, z_k, index))
        self._enqueue(g_k, z_k, index)  # after the loss: a query's own key is never a negative
        return out
