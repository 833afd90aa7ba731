"""MoCo v2: a query encoder, a momentum key encoder and a queue of negatives."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import default_of, option
from ..heads import MoCoV2ProjectionHead
from ..losses import InfoNCELoss
from ..losses._validate import positive_int
from ..schedule import cosine_momentum
from ..transforms.multiview import MoCoV2Transform
from ._views import batch_extras, get_views
from .backbone import TimmBackbone
from .config import PretrainConfig
from .diagnostics import contrast_stats
from .distributed import gather_no_grad, rank_and_world_size, shared_permutation
from .method import StepContext
from .momentum import momentum_update
from .queue import FeatureQueue
from .registry import MethodSpec, register_method

__all__ = ["MoCoV2", "MoCoV2Config", "MOMENTUM_SCHEDULES"]

MOMENTUM_SCHEDULES = ("constant", "cosine")

#: per-sample outputs of one branch (query or key), by name: {"g": (B, Dg), "z": (B, Dz), ...}
Embedding = dict[str, Tensor]


@dataclasses.dataclass
class MoCoV2Config(PretrainConfig):
    """MoCo v2 (facebookresearch/moco defaults: ResNet-50, 200 epochs, lr 0.03 per 256)."""

    output_dir: str = option("outputs/mocov2", "where checkpoints, logs, the export and config.yaml go")
    queue_size: int = option(65536, "K: entries in the queue of negatives")
    dim: int = option(128, "size of the MLP embedding")
    hidden_dim: int = option(2048, "width of the MLP head")
    ema_momentum: float = option(0.999, "m of the momentum encoder")
    ema_schedule: str = option("constant", "constant | cosine (m -> 1, as BYOL)")
    temperature: float = option(0.2, "τ of InfoNCE")
    shuffle_bn: bool = option(True, "MoCo's shuffle-BN: keys normalised with other images than their queries")
    bn_splits: int = option(1, "BN groups per process (queries and shuffled keys): shuffle-BN on a single device")

    def queue_kwargs(self) -> dict[str, Any]:
        """The MoCo-family constructor arguments (shared by MLS and DenseCL)."""
        return dict(dim=self.dim, hidden_dim=self.hidden_dim, queue_size=self.queue_size, momentum=self.ema_momentum,
                    momentum_schedule=self.ema_schedule, temperature=self.temperature, shuffle_bn=self.shuffle_bn,
                    bn_splits=self.bn_splits, pretrained=self.pretrained)

    def build_method(self) -> MoCoV2:
        return MoCoV2(self.backbone, **self.queue_kwargs())

    def build_views(self) -> MoCoV2Transform:
        return MoCoV2Transform(size=self.image_size, scale=(self.crop_scale_min, 1.0), hue_mode=self.hue_mode)


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

    Subclasses (MLS, DenseCL) change what a branch computes (:meth:`_embed`), the losses,
    the diagnostics and what is enqueued; shuffle-BN and the momentum update serve them all.

    Args (defaults: :class:`MoCoV2Config`'s, written there only):
        backbone: timm model name.
        dim: embedding size. hidden_dim: MLP width.
        queue_size: K. momentum: m. temperature: T.
        momentum_schedule: ``"constant"`` (MoCo) or ``"cosine"`` (m -> 1 over the run, as
            BYOL); :meth:`begin_step` sets ``self.momentum`` from it.
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

    def __init__(  # defaults: MoCoV2Config's, the one place they are written
        self,
        backbone: str = default_of(MoCoV2Config, "backbone"),
        *,
        dim: int = default_of(MoCoV2Config, "dim"),
        hidden_dim: int = default_of(MoCoV2Config, "hidden_dim"),
        queue_size: int = default_of(MoCoV2Config, "queue_size"),
        momentum: float = default_of(MoCoV2Config, "ema_momentum"),
        momentum_schedule: str = default_of(MoCoV2Config, "ema_schedule"),
        temperature: float = default_of(MoCoV2Config, "temperature"),
        shuffle_bn: bool = default_of(MoCoV2Config, "shuffle_bn"),
        bn_splits: int = default_of(MoCoV2Config, "bn_splits"),
        pretrained: bool = default_of(MoCoV2Config, "pretrained"),
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        positive_int("dim", dim)
        positive_int("hidden_dim", hidden_dim)
        positive_int("queue_size", queue_size)
        positive_int("bn_splits", bn_splits)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if momentum_schedule not in MOMENTUM_SCHEDULES:
            raise ValueError(f"momentum_schedule must be one of {MOMENTUM_SCHEDULES}, got {momentum_schedule!r}")
        self.encoder = TimmBackbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
        self.projector = MoCoV2ProjectionHead(self.encoder.num_features, hidden_dim, dim)
        self.momentum_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.queue = FeatureQueue(queue_size, dim)
        self.criterion = InfoNCELoss(temperature)
        self.base_momentum = float(momentum)
        self.momentum = float(momentum)  # this step's m; begin_step schedules it
        self.momentum_schedule = momentum_schedule
        self.shuffle_bn = shuffle_bn
        self.bn_splits = bn_splits

    # -- the per-step schedule (the method contract's hook) -------------------------------
    def begin_step(self, at: StepContext) -> None:
        """The EMA momentum of the coming step. The momentum encoder is updated at every
        forward, so a step of n forwards (gradient accumulation) uses m^(1/n) at each: the
        online weights do not change within a step, and n updates with m^(1/n) are one
        update with m, whatever n (an epoch's last step may have fewer forwards)."""
        m = (cosine_momentum(at.step, at.total_steps, self.base_momentum) if self.momentum_schedule == "cosine"
             else self.base_momentum)
        self.momentum = m ** (1.0 / at.forwards)

    # -- the steps of one forward -------------------------------------------------------
    def _bn_groups(self, x: Tensor) -> tuple[Tensor, ...]:
        """The batch's BN groups: with ``bn_splits`` > 1 each gets its own batch statistics."""
        return x.chunk(self.bn_splits) if self.bn_splits > 1 else (x,)

    def _embed(self, x: Tensor, momentum: bool) -> Embedding:
        """One branch: the backbone per BN group, then the projection head."""
        encoder, projector = (self.momentum_encoder, self.momentum_projector) if momentum else (self.encoder, self.projector)
        g = torch.cat([encoder(c) for c in self._bn_groups(x)])  # (B, Dg)
        return {"g": g, "z": projector(g)}  # z: (B, Dz)

    def _momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, momentum copy) pairs that the EMA updates."""
        return [(self.encoder, self.momentum_encoder), (self.projector, self.momentum_projector)]

    @torch.no_grad()
    def _keys(self, x_k: Tensor) -> Embedding:
        """The momentum branch on the key view, with shuffle-BN."""
        for online, target in self._momentum_pairs():
            momentum_update(online, target, self.momentum)
        rank, world_size = rank_and_world_size()
        if not (self.shuffle_bn and (world_size > 1 or self.bn_splits > 1)):
            return self._embed(x_k, momentum=True)
        # Shuffle-BN: a key is normalised with other images than its query, so that BN's
        # batch statistics cannot tell the positive from the queue's older keys.
        b = x_k.shape[0]
        x_all = gather_no_grad(x_k)  # (W·B, C, H, W)
        perm = shared_permutation(x_all.shape[0], x_all.device)
        keys = self._embed(x_all[perm[rank * b : (rank + 1) * b]], momentum=True)
        # undo the shuffle in one collective: row j of the gathered outputs belongs to sample perm[j]
        flat = torch.cat([v.flatten(1) for v in keys.values()], dim=1)  # (B, Σ sizes)
        gathered = gather_no_grad(flat)
        unshuffled = torch.empty_like(gathered)
        unshuffled[perm] = gathered
        mine = unshuffled[rank * b : (rank + 1) * b].split([v[0].numel() for v in keys.values()], dim=1)
        return {name: part.reshape(v.shape).to(v.dtype) for (name, v), part in zip(keys.items(), mine)}

    def _losses(self, q: Embedding, k: Embedding) -> dict[str, Tensor]:
        loss_nce = self.criterion(q["z"], k["z"], self.queue.features)
        return {"loss": loss_nce, "loss_nce": loss_nce.detach()}

    @torch.no_grad()
    def _diagnostics(self, q: Embedding, k: Embedding, index: Tensor | None,
                     label_table: Tensor | None) -> dict[str, Tensor]:
        return contrast_stats(q["z"], k["z"], self.queue.features)

    @torch.no_grad()
    def _enqueue(self, k: Embedding, index: Tensor | None) -> None:
        self.queue.enqueue(F.normalize(k["z"].float(), dim=1), index)

    def forward(self, batch: Any) -> dict[str, Tensor]:
        x_q, x_k = get_views(batch, 2, type(self).__name__)
        index, diagnostics, label_table = batch_extras(batch)
        if self.bn_splits > 1 and x_q.shape[0] < 2 * self.bn_splits:
            raise ValueError(f"{type(self).__name__}: a batch of {x_q.shape[0]} cannot make {self.bn_splits} BN groups "
                             "of at least 2 images; lower bn_splits")
        q = self._embed(x_q, momentum=False)
        k = self._keys(x_k)
        out = self._losses(q, k)
        if diagnostics:
            out.update(self._diagnostics(q, k, index, label_table))
        self._enqueue(k, index)  # after the loss: a query's own key is never a negative
        return out


register_method(MethodSpec(
    name="mocov2", display_name="MoCo v2", module=MoCoV2, config=MoCoV2Config,
    paper="Chen, Fan, Girshick & He, Improved Baselines with Momentum Contrastive Learning, arXiv 2020",
    quick_config="mocov2_scenes.yaml", paper_config="mocov2_coco_r50.yaml",
    citation="""@article{chen2020mocov2,
  title   = {Improved Baselines with Momentum Contrastive Learning},
  author  = {Chen, Xinlei and Fan, Haoqi and Girshick, Ross and He, Kaiming},
  journal = {arXiv:2003.04297},
  year    = {2020}
}""",
))
