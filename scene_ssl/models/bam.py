"""BAM + IA-CLoss on SimSiam: block-wise views and an image-aware contrastive loss."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..heads import SimSiamPredictionHead, SimSiamProjectionHead
from ..losses import ImageAwareContrastiveLoss, NegativeCosineLoss
from ..losses._validate import positive_float, positive_int
from ._views import get_views, stack_pairs
from .backbone import TimmBackbone
from .distributed import gather_no_grad, gather_with_grad, rank_and_world_size, shared_permutation

__all__ = ["BAM"]


class BAM(nn.Module):
    """Block-wise Augmentation Module + Image-Aware Contrastive loss (Chen, HHU-JialeChen/SSL).

    A SimSiam (encoder -> 3-layer projector -> predictor) fed ``2·blocks`` views per image:
    ``batch["views"] = [t1(B1..Bn), t2(B1..Bn)]`` (see
    :class:`scene_ssl.transforms.BlockwiseTransform`), i.e. ``n·B`` pairs. The pairs of the
    global batch are shuffled with one permutation shared by both views, across processes
    (a shuffle-BN; on one process the order changes nothing, so no copy is made). The image
    of each pair is its label for IA-CLoss.

    ``L = L_sim + λ · L_ia``; ``L_sim = ½[-cos(p1, z2) - cos(p2, z1)]``;
    ``L_ia = ½[IA(n̂(cat[p1, z2]), ids) + IA(n̂(cat[p2, z1]), ids)]``, computed over the
    views of all processes (the paper's Eq. 1 over the whole batch; the authors' code uses
    each GPU's shard only).

    Args:
        backbone: timm model name. blocks: 4 (1 = plain SimSiam views).
        proj_dim / proj_hidden_dim: projector output and hidden width (2048 / 2048).
        pred_hidden_dim: predictor bottleneck (512).
        ia_weight: λ (4). ia_temperature: T (0.3). ia_base_temperature: T_b (0.07).
        ia_form: ``"in"`` (authors' code) or ``"out"`` (SupCon, the paper's SUP).
        stop_grad: detach z in both losses. ``None`` (default) follows the authors' code
            when λ > 0 (no detach) and SimSiam when λ = 0 (detach).
        shuffle: shuffle pairs across processes.

    timm ResNets already zero-initialise the last BN of each residual block
    (``zero_init_last=True``), which is SimSiam's ``zero_init_residual``.

    Example:
        >>> import torch
        >>> model = BAM("test_resnet", blocks=2, proj_dim=16, proj_hidden_dim=16, pred_hidden_dim=8)
        >>> views = [torch.randn(3, 3, 32, 32) for _ in range(4)]
        >>> sorted(model({"views": views}))
        ['loss', 'loss_ia', 'loss_sim', 'z_std']
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        *,
        blocks: int = 4,
        proj_dim: int = 2048,
        proj_hidden_dim: int = 2048,
        pred_hidden_dim: int = 512,
        ia_weight: float = 4.0,
        ia_temperature: float = 0.3,
        ia_base_temperature: float = 0.07,
        ia_form: str = "in",
        stop_grad: bool | None = None,
        shuffle: bool = True,
        pretrained: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        positive_int("blocks", blocks)
        positive_float("ia_temperature", ia_temperature)  # named as the method's argument, not the loss's
        positive_float("ia_base_temperature", ia_base_temperature)
        if ia_form not in ("in", "out"):
            raise ValueError(f"ia_form must be 'in' or 'out', got {ia_form!r}")
        if ia_weight < 0:
            raise ValueError(f"ia_weight must be >= 0, got {ia_weight}")
        self.encoder = TimmBackbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
        self.projector = SimSiamProjectionHead(self.encoder.num_features, proj_hidden_dim, proj_dim)
        self.predictor = SimSiamPredictionHead(proj_dim, pred_hidden_dim)
        self.sim_criterion = NegativeCosineLoss()
        self.ia_criterion = ImageAwareContrastiveLoss(ia_temperature, ia_base_temperature, ia_form)
        self.blocks = blocks
        self.num_views = 2 * blocks
        self.ia_weight = float(ia_weight)
        self.stop_grad = (self.ia_weight == 0) if stop_grad is None else bool(stop_grad)
        self.shuffle = shuffle

    @torch.no_grad()
    def _shuffle_pairs(self, x1: Tensor, x2: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """This process's shard of the globally shuffled pairs (one permutation for both views)."""
        rank, world_size = rank_and_world_size()
        if not (self.shuffle and world_size > 1):
            return x1, x2, ids
        n = x1.shape[0]
        x1_all, x2_all, ids_all = gather_no_grad(x1), gather_no_grad(x2), gather_no_grad(ids)
        mine = shared_permutation(x1_all.shape[0], x1.device)[rank * n : (rank + 1) * n]
        return x1_all[mine], x2_all[mine], ids_all[mine]

    def forward(self, batch: Any) -> dict[str, Tensor]:
        views = get_views(batch, self.num_views, type(self).__name__)
        b = views[0].shape[0]
        rank, _ = rank_and_world_size()
        x1, x2 = stack_pairs(views, self.blocks)  # (n·B, C, H, W) each, block-major
        ids = (torch.arange(b, device=x1.device) + rank * b).repeat(self.blocks)  # image of each pair
        x1, x2, ids = self._shuffle_pairs(x1, x2, ids)

        z1 = self.projector(self.encoder(x1))
        z2 = self.projector(self.encoder(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = (z1.detach(), z2.detach()) if self.stop_grad else (z1, z2)
        loss_sim = 0.5 * (self.sim_criterion(p1, t2) + self.sim_criterion(p2, t1))
        out = {"loss": loss_sim, "loss_sim": loss_sim.detach()}
        if self.ia_weight > 0:
            ids2 = gather_no_grad(torch.cat([ids, ids]))
            f1 = gather_with_grad(torch.cat([p1, t2]))  # (2·n·B·W, D)
            f2 = gather_with_grad(torch.cat([p2, t1]))
            loss_ia = 0.5 * (self.ia_criterion(f1, ids2) + self.ia_criterion(f2, ids2))
            out["loss"] = loss_sim + self.ia_weight * loss_ia
            out["loss_ia"] = loss_ia.detach()
        with torch.no_grad():  # SimSiam's collapse monitor: ~1/sqrt(d) when healthy, 0 when collapsed
            out["z_std"] = F.normalize(z1.float(), dim=1).std(dim=0).mean()
        return out
