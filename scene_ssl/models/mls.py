"""MLS: MoCo v2 plus a backbone-feature queue and a multi-label BCE loss."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import default_of, option
from ..losses import KNNSoftmaxLoss, MLSLoss, mls_topk
from .diagnostics import pseudo_label_precision
from .method import StepContext
from .mocov2 import Embedding, MoCoV2, MoCoV2Config
from .queue import FeatureQueue
from .registry import MethodSpec, register_method

__all__ = ["MLS", "MLSConfig", "LOSS_FORMS", "DICTIONARIES"]

LOSS_FORMS = ("bce", "bce_pos", "knn_softmax")
DICTIONARIES = ("both", "g", "z")


@dataclasses.dataclass
class MLSConfig(MoCoV2Config):
    """MLS (MoCo v2 + two queues + BCE; the paper's COCO run). ``mls_weight: 0`` trains plain MoCo v2."""

    output_dir: str = option("outputs/mls", "where checkpoints, logs, the export and config.yaml go")
    base_lr: float = option(0.3, "learning rate per 256 images: lr = base_lr x total batch / 256")
    queue_size: int = option(4096, "D: entries in each queue (the paper: 4096)")
    dim: int = option(256, "d_z: size of the MLP embedding")
    ema_momentum: float = option(0.995, "m of the momentum encoder")
    temperature: float = option(0.2, "τ of InfoNCE and of the BCE")
    topk: int = option(20, "k: pseudo-positives per query")
    mls_weight: float = option(0.5, "λ of the BCE loss (0: plain MoCo v2)")
    loss_form: str = option("bce", "bce (the paper) | bce_pos | knn_softmax (supp. ablations)")
    dictionary: str = option("both", "both (labels from Q_g, logits from Q_z: MLS) | g | z (single-dictionary variants, Table 7)")
    mls_warmup_epochs: float = option(0.0, "InfoNCE alone for this many epochs before the BCE joins (paper §3.3)")

    def build_method(self) -> MoCoV2:
        if self.mls_weight == 0:  # no BCE: MoCo v2 itself (its export and card say so)
            return MoCoV2(self.backbone, **self.queue_kwargs())
        return MLS(self.backbone, **self.queue_kwargs(), topk=self.topk, mls_weight=self.mls_weight,
                   warmup_epochs=self.mls_warmup_epochs, loss_form=self.loss_form, dictionary=self.dictionary)


class MLS(MoCoV2):
    """Multi-Label Self-supervised learning (Zhu, Fu & Wu, ICCV 2023).

    MoCo v2 with two queues of the same size and order: Q_g holds the normalised backbone
    features g_k of the key view and Q_z their MLP embeddings z_k (both from the momentum
    encoder). Each query gets k binary pseudo-labels over the queue, ``IsTopk(ĝ_q·Q̂_gᵀ)``,
    and ``L = L_nce + λ · L_mls``. Keys are enqueued into both queues after the loss.

    When MLS helps: its positives are the queue entries nearest to the query in backbone
    space, so it adds signal only once those neighbours tend to share objects with the
    query (a measurable fact: with ``batch["label_table"]`` the diagnostics report the
    top-k precision next to chance). From a poor starting point (near-collapsed
    embeddings, InfoNCE near chance) the BCE's push away from every negative is the same
    vector for all queries and rotates the embeddings together instead of spreading them;
    a warm-up of InfoNCE alone (the paper's remedy, §3.3: ``warmup_epochs``; during it
    :meth:`begin_step` sets ``self.mls_active = False``) avoids that start.

    Args (defaults: :class:`MLSConfig`'s, written there only):
        backbone: timm model name.
        dim: d_z. queue_size: D. momentum: m. temperature: τ, shared by InfoNCE and the BCE.
        topk: k. mls_weight: λ.
        warmup_epochs: InfoNCE alone for this many epochs first (0: the BCE from the start).
        loss_form: ``"bce"`` (the paper), ``"bce_pos"`` (no negative terms, supp. Eq. 15)
            or ``"knn_softmax"`` (supp. Eq. 10).
        dictionary: which queues the BCE uses (the paper's Table 7): ``"both"`` = labels
            from Q_g, logits from Q_z (MLS itself); ``"g"`` = labels and logits from Q_g
            (the logits ĝ_q·Q̂_gᵀ then train the backbone directly); ``"z"`` = labels and
            logits from Q_z.
        moco_kwargs: hidden_dim / momentum_schedule / shuffle_bn / bn_splits / pretrained /
            backbone_kwargs, as :class:`MoCoV2`.

    Example:
        >>> import torch
        >>> model = MLS("test_resnet", dim=16, hidden_dim=32, queue_size=64, topk=5)
        >>> out = model({"views": [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]})
        >>> sorted(out)
        ['loss', 'loss_mls', 'loss_nce']

    With the dataset's labels, the diagnostics measure the pseudo-labels:

        >>> labels = torch.eye(8, dtype=torch.bool)[torch.arange(16) % 8]  # 16 images, 8 classes
        >>> x = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]
        >>> out = model({"views": x, "index": torch.arange(4), "diagnostics": True, "label_table": labels})
        >>> sorted(k for k in out if k.startswith("pl_"))
        ['pl_chance', 'pl_precision']
    """

    def __init__(  # defaults: MLSConfig's; the rest (hidden_dim, shuffle_bn ...) are MoCoV2's, forwarded
        self,
        backbone: str = default_of(MLSConfig, "backbone"),
        *,
        dim: int = default_of(MLSConfig, "dim"),
        queue_size: int = default_of(MLSConfig, "queue_size"),
        momentum: float = default_of(MLSConfig, "ema_momentum"),
        temperature: float = default_of(MLSConfig, "temperature"),
        topk: int = default_of(MLSConfig, "topk"),
        mls_weight: float = default_of(MLSConfig, "mls_weight"),
        warmup_epochs: float = default_of(MLSConfig, "mls_warmup_epochs"),
        loss_form: str = default_of(MLSConfig, "loss_form"),
        dictionary: str = default_of(MLSConfig, "dictionary"),
        **moco_kwargs: Any,
    ) -> None:
        if loss_form not in LOSS_FORMS:
            raise ValueError(f"loss_form must be one of {LOSS_FORMS}, got {loss_form!r}")
        if dictionary not in DICTIONARIES:
            raise ValueError(f"dictionary must be one of {DICTIONARIES}, got {dictionary!r}")
        if isinstance(topk, int) and isinstance(queue_size, int) and topk > queue_size:
            raise ValueError(f"topk={topk} must not exceed queue_size={queue_size}")
        if mls_weight < 0:
            raise ValueError(f"mls_weight must be >= 0, got {mls_weight}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        super().__init__(backbone, dim=dim, queue_size=queue_size, momentum=momentum, temperature=temperature,
                         **moco_kwargs)
        self.queue_g = FeatureQueue(queue_size, self.encoder.num_features)
        if loss_form == "knn_softmax":
            self.mls_criterion = KNNSoftmaxLoss(temperature, topk)
        else:
            self.mls_criterion = MLSLoss(temperature, topk, negatives=loss_form == "bce")
        self.mls_weight = float(mls_weight)
        self.loss_form = loss_form
        self.dictionary = dictionary
        self.topk = topk
        self.warmup_epochs = float(warmup_epochs)
        self.mls_active = True  # False: InfoNCE alone (warm-up); loss_mls is still reported

    def begin_step(self, at: StepContext) -> None:
        super().begin_step(at)
        self.mls_active = at.step >= int(self.warmup_epochs * at.steps_per_epoch)

    def _dictionaries(self, g_q: Tensor, z_q: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(label query, logit query, label queue, logit queue) of the chosen Table 7 variant."""
        if self.dictionary == "g":
            return g_q, g_q, self.queue_g.features, self.queue_g.features
        if self.dictionary == "z":
            return z_q, z_q, self.queue.features, self.queue.features
        return g_q, z_q, self.queue_g.features, self.queue.features

    def _losses(self, q: Embedding, k: Embedding) -> dict[str, Tensor]:
        out = super()._losses(q, k)
        loss_mls = self.mls_criterion(*self._dictionaries(q["g"], q["z"]))  # labels carry no gradient
        weight = self.mls_weight if self.mls_active else 0.0
        out["loss"] = out["loss"] + weight * loss_mls
        out["loss_mls"] = loss_mls.detach()
        return out

    @torch.no_grad()
    def _diagnostics(self, q: Embedding, k: Embedding, index: Tensor | None,
                     label_table: Tensor | None) -> dict[str, Tensor]:
        out = super()._diagnostics(q, k, index, label_table)
        if label_table is None or index is None:
            return out
        labels = label_table.to(device=self.queue.index.device, dtype=torch.bool)
        label_q, _, label_queue, _ = self._dictionaries(q["g"], q["z"])
        rows = mls_topk(label_q, label_queue, self.topk)  # (B, k)
        valid = self.queue.index >= 0
        queue_labels = labels[self.queue.index.clamp_min(0)]  # (K, C)
        out["pl_precision"], out["pl_chance"] = pseudo_label_precision(rows, labels[index.to(labels.device)], queue_labels,
                                                                       valid)
        return out

    @torch.no_grad()
    def _enqueue(self, k: Embedding, index: Tensor | None) -> None:
        # Same batch, same number of rows, same pointer arithmetic: Q_g and Q_z stay aligned.
        self.queue_g.enqueue(F.normalize(k["g"].float(), dim=1), index)
        super()._enqueue(k, index)


register_method(MethodSpec(
    name="mls", display_name="MLS", module=MLS, config=MLSConfig,
    paper="Zhu, Fu & Wu, Multi-Label Self-Supervised Learning with Scene Images, ICCV 2023",
    quick_config="mls_scenes.yaml", paper_config="mls_coco_r50.yaml",
    citation="""@inproceedings{zhu2023mls,
  title     = {Multi-Label Self-Supervised Learning with Scene Images},
  author    = {Zhu, Ke and Fu, Minghao and Wu, Jianxin},
  booktitle = {ICCV},
  year      = {2023}
}""",
))
