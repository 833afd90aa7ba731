"""DenseCL: MoCo v2 plus a dense contrastive loss between matched locations of the two views."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import default_of, option
from ..heads import DenseProjectionHead
from ..losses import DenseContrastiveLoss
from .mocov2 import Embedding, MoCoV2, MoCoV2Config
from .queue import FeatureQueue
from .registry import MethodSpec, register_method

__all__ = ["DenseCL", "DenseCLConfig"]


@dataclasses.dataclass
class DenseCLConfig(MoCoV2Config):
    """DenseCL; defaults: the official COCO config (``configs/selfsup/densecl/densecl_coco_800ep.py``:
    ResNet-50, 800 epochs, batch 256, lr 0.3, cosine, wd 1e-4, K 65536, m 0.999, T 0.2, λ 0.5,
    MoCo v2 views). The ImageNet config (``densecl_imagenet_200ep.py``) differs only in 200
    epochs and lr 0.03. Their λ warm-up hook is in the code but in no config: not used here either."""

    output_dir: str = option("outputs/densecl", "where checkpoints, logs, the export and config.yaml go")
    epochs: int = option(800, "length of the run in epochs")
    base_lr: float = option(0.3, "learning rate per 256 images: lr = base_lr x total batch / 256")
    dense_weight: float = option(0.5, "λ: L = (1 - λ) L_global + λ L_dense")

    def build_method(self) -> DenseCL:
        return DenseCL(self.backbone, **self.queue_kwargs(), dense_weight=self.dense_weight)


class DenseCL(MoCoV2):
    """Dense Contrastive Learning (Wang et al., CVPR 2021; WXinlong/DenseCL) on any timm backbone.

    MoCo v2 (the global branch: pooled features -> MLP -> InfoNCE against a queue) plus a
    dense branch on the backbone's last feature map: a 1x1-conv MLP
    (:class:`~scene_ssl.heads.DenseProjectionHead`) embeds every location; each query location's positive is
    the key-view location whose *backbone* feature is most similar
    (:func:`~scene_ssl.losses.dense_correspondence`, no gradient;
    the loss is :class:`~scene_ssl.losses.DenseContrastiveLoss`); its negatives are a second queue holding the
    normalised spatial mean of each key's dense embedding. Both queues have the same size
    and are filled from the same batches after the loss, so they stay aligned.
    ``L = (1 - λ)·L_global + λ·L_dense``, L_dense averaged over all B·S² locations.

    ViTs work too: their patch tokens on the grid are the dense map, the class token (the
    timm model's pooling) the global feature.

    Args (defaults: :class:`DenseCLConfig`'s, written there only):
        backbone: timm model name.
        dim: embedding size of both branches. hidden_dim: MLP / 1x1-conv width.
        queue_size: K of both queues. temperature: T. dense_weight: λ.
        moco_kwargs: momentum / momentum_schedule / shuffle_bn / bn_splits / pretrained /
            backbone_kwargs, as :class:`MoCoV2`.

    Example:
        >>> model = DenseCL("test_resnet", dim=16, hidden_dim=32, queue_size=64)
        >>> out = model({"views": [torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)]})
        >>> sorted(out), out["loss"].requires_grad
        (['loss', 'loss_dense', 'loss_nce'], True)
    """

    def __init__(  # defaults: DenseCLConfig's; shuffle_bn, bn_splits, the schedule ... are MoCoV2's, forwarded
        self,
        backbone: str = default_of(DenseCLConfig, "backbone"),
        *,
        dim: int = default_of(DenseCLConfig, "dim"),
        hidden_dim: int = default_of(DenseCLConfig, "hidden_dim"),
        queue_size: int = default_of(DenseCLConfig, "queue_size"),
        temperature: float = default_of(DenseCLConfig, "temperature"),
        dense_weight: float = default_of(DenseCLConfig, "dense_weight"),
        **moco_kwargs: Any,
    ) -> None:
        if not 0.0 <= dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be in [0, 1], got {dense_weight}")
        super().__init__(backbone, dim=dim, hidden_dim=hidden_dim, queue_size=queue_size, temperature=temperature,
                         **moco_kwargs)
        self.dense_projector = DenseProjectionHead(self.encoder.num_features, hidden_dim, dim)
        self.momentum_dense_projector = copy.deepcopy(self.dense_projector).requires_grad_(False)
        self.queue_dense = FeatureQueue(queue_size, dim)
        self.dense_criterion = DenseContrastiveLoss(temperature)
        self.dense_weight = float(dense_weight)

    def _momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super()._momentum_pairs(), (self.dense_projector, self.momentum_dense_projector)]

    def _embed(self, x: Tensor, momentum: bool) -> Embedding:
        """g (B, Dg) and z (B, D) as MoCo v2; ``map`` (B, Dg, N): the backbone's last map;
        ``grid`` (B, D, N): its dense embedding."""
        encoder, projector, dense = ((self.momentum_encoder, self.momentum_projector, self.momentum_dense_projector)
                                     if momentum else (self.encoder, self.projector, self.dense_projector))
        pooled, maps = zip(*(encoder.pooled_and_map(c) for c in self._bn_groups(x)))  # one trunk pass per group
        g, fmap = torch.cat(pooled), torch.cat(maps)  # (B, Dg), (B, Dg, S, S)
        return {"g": g, "z": projector(g), "map": fmap.flatten(2), "grid": dense(fmap).flatten(2)}

    def _losses(self, q: Embedding, k: Embedding) -> dict[str, Tensor]:
        out = super()._losses(q, k)  # the global InfoNCE
        loss_dense = self.dense_criterion(q["grid"], k["grid"], q["map"].detach(), k["map"], self.queue_dense.features)
        out["loss"] = (1.0 - self.dense_weight) * out["loss"] + self.dense_weight * loss_dense
        out["loss_dense"] = loss_dense.detach()
        return out

    @torch.no_grad()
    def _enqueue(self, k: Embedding, index: Tensor | None) -> None:
        # Same batch, same rows, same pointer arithmetic: the two queues stay aligned.
        super()._enqueue(k, index)
        self.queue_dense.enqueue(F.normalize(k["grid"].float().mean(dim=2), dim=1), index)  # (B, D)


register_method(MethodSpec(
    name="densecl", display_name="DenseCL", module=DenseCL, config=DenseCLConfig,
    paper="Wang, Zhang, Shen, Kong & Li, Dense Contrastive Learning for Self-Supervised Visual Pre-Training, CVPR 2021",
    quick_config="densecl_scenes.yaml", paper_config="densecl_coco_r50.yaml",
    citation="""@inproceedings{wang2021densecl,
  title     = {Dense Contrastive Learning for Self-Supervised Visual Pre-Training},
  author    = {Wang, Xinlong and Zhang, Rufeng and Shen, Chunhua and Kong, Tao and Li, Lei},
  booktitle = {CVPR},
  year      = {2021}
}""",
))
