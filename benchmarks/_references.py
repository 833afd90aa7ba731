"""The learning benchmark's two reference rows, beside the registered methods.

- ``supervised``: the ceiling. The same backbone, views and epochs as the MoCo v2 quick run,
  trained with BCE on the dataset's multi-hot labels through a linear head on the pooled
  features (the loop hands every method the label table for diagnostics; this reference is
  the one "method" that trains on it). Probed like the others.
- ``simsiam_matched``: SimSiam with as many views per image as BAM processes in the same
  number of epochs (BAM: 4 blocks x 2 views; SimSiam: 2 views, so 4x the epochs), to tell
  BAM's blocks and IA-CLoss from its extra views.
"""
from __future__ import annotations

import dataclasses

import torch.nn.functional as F
from torch import Tensor, nn

from scene_ssl.config import option
from scene_ssl.models import MoCoV2Config, StepContext, TimmBackbone

__all__ = ["Supervised", "SupervisedConfig", "REFERENCES"]

#: reference row -> the registered method whose quick config it starts from
REFERENCES = {"supervised": "mocov2", "simsiam_matched": "simsiam"}


class Supervised(nn.Module):
    """Backbone + linear head, BCE with logits on the labels of each view's image."""

    num_views = 2

    def __init__(self, backbone: str, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError("the supervised reference needs labeled data (num_classes >= 1)")
        self.encoder = TimmBackbone(backbone)
        self.head = nn.Linear(self.encoder.num_features, num_classes)

    def begin_step(self, at: StepContext) -> None:
        """No schedule."""

    def forward(self, batch: dict) -> dict[str, Tensor]:
        if "label_table" not in batch:
            raise ValueError("the supervised reference needs data with labels (no label_table in the batch)")
        targets = batch["label_table"][batch["index"]].float()  # (B, C) multi-hot
        loss = sum(F.binary_cross_entropy_with_logits(self.head(self.encoder(v)).float(), targets)
                   for v in batch["views"]) / len(batch["views"])
        return {"loss": loss, "loss_bce": loss.detach()}


@dataclasses.dataclass
class SupervisedConfig(MoCoV2Config):
    """The MoCo v2 quick run's fields (backbone, views, optimiser, budget) plus the label count."""

    num_classes: int = option(0, "classes of the training labels")

    def build_method(self) -> Supervised:
        return Supervised(self.backbone, self.num_classes)
