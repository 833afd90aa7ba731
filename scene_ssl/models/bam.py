"""BAM + IA-CLoss on SimSiam: block-wise views and an image-aware contrastive loss."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from ..config import default_of, option
from ..losses import ImageAwareContrastiveLoss
from ..losses._validate import positive_float, positive_int
from ..transforms.multiview import BlockwiseTransform, bam_view_transforms
from ._views import stack_pairs
from .distributed import gather_no_grad, gather_with_grad, rank_and_world_size
from .registry import MethodSpec, register_method
from .simsiam import SimSiam, SimSiamConfig

__all__ = ["BAM", "BAMConfig"]


@dataclasses.dataclass
class BAMConfig(SimSiamConfig):
    """BAM + IA-CLoss on SimSiam. ``ia_weight: 0`` and ``blocks: 1`` train plain SimSiam."""

    output_dir: str = option("outputs/bam", "where checkpoints, logs, the export and config.yaml go")
    base_lr: float = option(0.05, "learning rate per 256 blocks: lr = base_lr x total batch x blocks / 256")
    blocks: int = option(4, "blocks per image: 4 (BAM) | 1 (whole image, SimSiam)")
    overlap: float = option(0.2, "γ: how far each block reaches past the middle, in [0, 0.5)")
    ia_weight: float = option(4.0, "λ of IA-CLoss (0: SimSiam's loss alone)")
    ia_temperature: float = option(0.3, "T of IA-CLoss")
    ia_base_temperature: float = option(0.07, "T_b of IA-CLoss")
    ia_form: str = option("in", "in (the authors' code) | out (SupCon L_out, the paper's SUP)")
    stop_grad: bool | None = option(None, "detach z; none: no detach with IA-CLoss (authors' code), detach without (SimSiam)")

    def lr(self, num_processes: int) -> float:
        return super().lr(num_processes) * self.blocks

    def lr_rule(self, num_processes: int) -> str:
        return f"{super().lr_rule(num_processes)} x {self.blocks} blocks"

    def build_method(self) -> nn.Module:
        if self.ia_weight == 0 and self.blocks == 1 and self.stop_grad is not False:  # SimSiam itself
            return SimSiam(self.backbone, **self.head_kwargs())
        return BAM(self.backbone, blocks=self.blocks, ia_weight=self.ia_weight, ia_temperature=self.ia_temperature,
                   ia_base_temperature=self.ia_base_temperature, ia_form=self.ia_form, stop_grad=self.stop_grad,
                   **self.head_kwargs())

    def build_views(self) -> BlockwiseTransform:
        t1, t2 = bam_view_transforms(self.image_size, scale=(self.crop_scale_min, 1.0), hue_mode=self.hue_mode)
        return BlockwiseTransform(t1, t2, overlap=self.overlap, blocks=self.blocks)


class BAM(SimSiam):
    """Block-wise Augmentation Module + Image-Aware Contrastive loss (Chen, HHU-JialeChen/SSL).

    A SimSiam (encoder -> 3-layer projector -> predictor) fed ``2·blocks`` views per image:
    ``batch["views"] = [t1(B1..Bn), t2(B1..Bn)]`` (see
    :class:`scene_ssl.transforms.BlockwiseTransform`), i.e. ``n·B`` pairs, shuffled across
    processes as SimSiam's. The image of each pair is its label for IA-CLoss.

    ``L = L_sim + λ · L_ia``; ``L_sim = ½[-cos(p1, z2) - cos(p2, z1)]``;
    ``L_ia = ½[IA(n̂(cat[p1, z2]), ids) + IA(n̂(cat[p2, z1]), ids)]``, computed over the
    views of all processes (the paper's Eq. 1 over the whole batch; the authors' code uses
    each GPU's shard only).

    Args (defaults: :class:`BAMConfig`'s, written there only):
        backbone: timm model name. blocks: blocks per image (1 = plain SimSiam views).
        ia_weight: λ. ia_temperature: T. ia_base_temperature: T_b.
        ia_form: ``"in"`` (authors' code) or ``"out"`` (SupCon, the paper's SUP).
        stop_grad: detach z in both losses. ``None`` (default) follows the authors' code
            when λ > 0 (no detach) and SimSiam when λ = 0 (detach).
        simsiam_kwargs: proj_dim / proj_hidden_dim / pred_hidden_dim / shuffle / pretrained /
            backbone_kwargs, as :class:`SimSiam`.

    Example:
        >>> import torch
        >>> model = BAM("test_resnet", blocks=2, proj_dim=16, proj_hidden_dim=16, pred_hidden_dim=8)
        >>> views = [torch.randn(3, 3, 32, 32) for _ in range(4)]
        >>> sorted(model({"views": views}))
        ['loss', 'loss_ia', 'loss_sim', 'z_std']
    """

    def __init__(  # defaults: BAMConfig's; the heads' and shuffle are SimSiam's, forwarded
        self,
        backbone: str = default_of(BAMConfig, "backbone"),
        *,
        blocks: int = default_of(BAMConfig, "blocks"),
        ia_weight: float = default_of(BAMConfig, "ia_weight"),
        ia_temperature: float = default_of(BAMConfig, "ia_temperature"),
        ia_base_temperature: float = default_of(BAMConfig, "ia_base_temperature"),
        ia_form: str = default_of(BAMConfig, "ia_form"),
        stop_grad: bool | None = default_of(BAMConfig, "stop_grad"),
        **simsiam_kwargs: Any,
    ) -> None:
        positive_int("blocks", blocks)
        positive_float("ia_temperature", ia_temperature)  # named as the method's argument, not the loss's
        positive_float("ia_base_temperature", ia_base_temperature)
        if ia_form not in ("in", "out"):
            raise ValueError(f"ia_form must be 'in' or 'out', got {ia_form!r}")
        if ia_weight < 0:
            raise ValueError(f"ia_weight must be >= 0, got {ia_weight}")
        super().__init__(backbone, **simsiam_kwargs)
        self.ia_criterion = ImageAwareContrastiveLoss(ia_temperature, ia_base_temperature, ia_form)
        self.blocks = blocks
        self.num_views = 2 * blocks
        self.ia_weight = float(ia_weight)
        self.stop_grad = (self.ia_weight == 0) if stop_grad is None else bool(stop_grad)

    def _pairs(self, views: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(x1, x2, image id of each pair), each (n·B, ...), block-major."""
        b = views[0].shape[0]
        rank, _ = rank_and_world_size()
        x1, x2 = stack_pairs(views, self.blocks)
        return x1, x2, (torch.arange(b, device=x1.device) + rank * b).repeat(self.blocks)

    def _losses(self, p1: Tensor, p2: Tensor, t1: Tensor, t2: Tensor, ids: Tensor) -> dict[str, Tensor]:
        out = super()._losses(p1, p2, t1, t2, ids)
        if self.ia_weight > 0:
            ids2 = gather_no_grad(torch.cat([ids, ids]))
            f1 = gather_with_grad(torch.cat([p1, t2]))  # (2·n·B·W, D)
            f2 = gather_with_grad(torch.cat([p2, t1]))
            loss_ia = 0.5 * (self.ia_criterion(f1, ids2) + self.ia_criterion(f2, ids2))
            out["loss"] = out["loss"] + self.ia_weight * loss_ia
            out["loss_ia"] = loss_ia.detach()
        return out


register_method(MethodSpec(
    name="bam", display_name="BAM + IA-CLoss", module=BAM, config=BAMConfig,
    paper="Chen, Self-Supervised Contrastive Learning for Multi-Label Images, arXiv 2025",
    quick_config="bam_scenes.yaml", paper_config="bam_coco_r50.yaml",
    citation="""@article{chen2025bam,
  title   = {Self-Supervised Contrastive Learning for Multi-Label Images},
  author  = {Chen, Jiale},
  journal = {arXiv:2506.23156},
  year    = {2025}
}""",
))
