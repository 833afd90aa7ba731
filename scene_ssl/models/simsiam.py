"""SimSiam: an encoder, a projector and a predictor; two views, negative cosine, stop-gradient."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import default_of, option
from ..heads import SimSiamPredictionHead, SimSiamProjectionHead
from ..losses import NegativeCosineLoss
from ..transforms.multiview import BlockwiseTransform, bam_view_transforms
from ._views import get_views
from .backbone import TimmBackbone
from .config import PretrainConfig
from .distributed import gather_no_grad, rank_and_world_size, shared_permutation
from .method import StepContext
from .registry import MethodSpec, register_method

__all__ = ["SimSiam", "SimSiamConfig"]


@dataclasses.dataclass
class SimSiamConfig(PretrainConfig):
    """SimSiam on two views of the whole image.

    The views are the BAM authors' two asymmetric pipelines (their SimSiam baseline), so
    that SimSiam and BAM differ only in the blocks and the IA-CLoss."""

    output_dir: str = option("outputs/simsiam", "where checkpoints, logs, the export and config.yaml go")
    base_lr: float = option(0.05, "learning rate per 256 images: lr = base_lr x total batch / 256")
    proj_dim: int = option(2048, "projector output size")
    proj_hidden_dim: int = option(2048, "projector width")
    pred_hidden_dim: int = option(512, "predictor bottleneck")
    shuffle: bool = option(True, "shuffle the pairs across processes (a shuffle-BN)")

    def head_kwargs(self) -> dict[str, Any]:
        """The SimSiam-family constructor arguments (shared with BAM)."""
        return dict(proj_dim=self.proj_dim, proj_hidden_dim=self.proj_hidden_dim, pred_hidden_dim=self.pred_hidden_dim,
                    shuffle=self.shuffle, pretrained=self.pretrained)

    def build_method(self) -> nn.Module:
        return SimSiam(self.backbone, **self.head_kwargs())

    def build_views(self) -> BlockwiseTransform:
        t1, t2 = bam_view_transforms(self.image_size, scale=(self.crop_scale_min, 1.0), hue_mode=self.hue_mode)
        return BlockwiseTransform(t1, t2, blocks=1)


class SimSiam(nn.Module):
    """SimSiam (Chen & He, CVPR 2021) on any timm backbone.

    ``batch["views"] = [x1, x2]``; ``L = ½[-cos(p1, z2) - cos(p2, z1)]`` with ``z`` detached
    (without the stop-gradient SimSiam collapses). The pairs of the global batch are
    shuffled with one permutation shared by both views, across processes (a shuffle-BN;
    on one process the order changes nothing, so no copy is made). Returns ``loss``,
    ``loss_sim`` and ``z_std`` (the collapse monitor: about 1/sqrt(d) when healthy, 0 when
    collapsed). :class:`~scene_ssl.models.BAM` extends it with blocks and IA-CLoss.

    Args (defaults: :class:`SimSiamConfig`'s, written there only):
        backbone: timm model name.
        proj_dim / proj_hidden_dim: projector output and hidden width.
        pred_hidden_dim: predictor bottleneck.
        shuffle: shuffle pairs across processes.
        pretrained / backbone_kwargs: passed to :class:`TimmBackbone`.

    timm ResNets already zero-initialise the last BN of each residual block
    (``zero_init_last=True``), which is SimSiam's ``zero_init_residual``.

    Example:
        >>> import torch
        >>> model = SimSiam("test_resnet", proj_dim=16, proj_hidden_dim=16, pred_hidden_dim=8)
        >>> out = model({"views": [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]})
        >>> model.stop_grad, sorted(out)
        (True, ['loss', 'loss_sim', 'z_std'])
    """

    num_views = 2

    def __init__(  # defaults: SimSiamConfig's, the one place they are written
        self,
        backbone: str = default_of(SimSiamConfig, "backbone"),
        *,
        proj_dim: int = default_of(SimSiamConfig, "proj_dim"),
        proj_hidden_dim: int = default_of(SimSiamConfig, "proj_hidden_dim"),
        pred_hidden_dim: int = default_of(SimSiamConfig, "pred_hidden_dim"),
        shuffle: bool = default_of(SimSiamConfig, "shuffle"),
        pretrained: bool = default_of(SimSiamConfig, "pretrained"),
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = TimmBackbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
        self.projector = SimSiamProjectionHead(self.encoder.num_features, proj_hidden_dim, proj_dim)
        self.predictor = SimSiamPredictionHead(proj_dim, pred_hidden_dim)
        self.sim_criterion = NegativeCosineLoss()
        self.stop_grad = True
        self.shuffle = shuffle

    def begin_step(self, at: StepContext) -> None:
        """No per-step schedule: no momentum encoder, no warm-up."""

    def _pairs(self, views: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(x1, x2, image id of each pair): one pair per image."""
        b = views[0].shape[0]
        rank, _ = rank_and_world_size()
        return views[0], views[1], torch.arange(b, device=views[0].device) + rank * b

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

    def _losses(self, p1: Tensor, p2: Tensor, t1: Tensor, t2: Tensor, ids: Tensor) -> dict[str, Tensor]:
        """``t`` are the targets: ``z``, detached when ``stop_grad``."""
        loss_sim = 0.5 * (self.sim_criterion(p1, t2) + self.sim_criterion(p2, t1))
        return {"loss": loss_sim, "loss_sim": loss_sim.detach()}

    def forward(self, batch: Any) -> dict[str, Tensor]:
        views = get_views(batch, self.num_views, type(self).__name__)
        x1, x2, ids = self._shuffle_pairs(*self._pairs(views))
        z1 = self.projector(self.encoder(x1))
        z2 = self.projector(self.encoder(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = (z1.detach(), z2.detach()) if self.stop_grad else (z1, z2)
        out = self._losses(p1, p2, t1, t2, ids)
        with torch.no_grad():  # the collapse monitor
            out["z_std"] = F.normalize(z1.float(), dim=1).std(dim=0).mean()
        return out


register_method(MethodSpec(
    name="simsiam", display_name="SimSiam", module=SimSiam, config=SimSiamConfig,
    paper="Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021",
    quick_config="simsiam_scenes.yaml",
    citation="""@inproceedings{chen2021simsiam,
  title     = {Exploring Simple Siamese Representation Learning},
  author    = {Chen, Xinlei and He, Kaiming},
  booktitle = {CVPR},
  year      = {2021}
}""",
))
