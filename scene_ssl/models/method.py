"""The method contract: what the training loop may call on a self-supervised method.

A method is an ``nn.Module`` that owns its whole algorithm — heads, momentum encoders,
queues, stop-gradients, per-step schedules — and offers the loop exactly four things,
written down here as a :class:`typing.Protocol` (as ``torch.utils.data`` documents what a
``Dataset`` must offer). The loop calls nothing else; adding a method never means
teaching the loop about it.

The batch a method's ``forward`` receives is a dict:

- ``"views"``: ``num_views`` normalised float tensors ``(B, 3, S, S)``, in the order its
  view transform (``cfg.build_views()``) makes them;
- ``"index"``: ``(B,)`` long, each image's index in the training set;
- ``"diagnostics"``: ``True`` at log steps, when the method may add its monitors
  (detached 0-d tensors) to the returned dict;
- ``"label_table"``: ``(N, C)`` bool multi-hot labels of the training set, indexed like
  ``"index"``, present only when the data has labels. For diagnostics only (e.g. MLS's
  pseudo-label precision); a self-supervised method never trains on it.

On several processes the loop's DDP does not broadcast buffers at each forward: a buffer
every process must agree on (a queue) is the method's to keep identical, e.g. by enqueueing
the keys gathered from all processes (:class:`~scene_ssl.models.FeatureQueue` does). BN
running statistics may differ between processes; checkpoints and the end of a run hold rank 0's.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

from torch import Tensor

from .backbone import TimmBackbone

__all__ = ["Method", "StepContext"]


@dataclasses.dataclass(frozen=True)
class StepContext:
    """Where a run stands, for a method's per-step schedules.

    ``step`` optimiser steps are done (the next one is ``step + 1``); the coming step is
    ``forwards`` forwards (``grad_accum_steps``, or fewer for an epoch's last step, which
    takes the batches that are left). Example: MoCo's cosine EMA momentum at ``step`` of
    ``total_steps``, MLS's InfoNCE-only warm-up for ``warmup_epochs * steps_per_epoch`` steps.
    """

    step: int
    total_steps: int
    steps_per_epoch: int
    forwards: int = 1


@runtime_checkable
class Method(Protocol):
    """What the pretraining loop calls on a method (and nothing else).

    Attributes:
        encoder: the backbone being pretrained (a :class:`TimmBackbone`): what is exported,
            probed and monitored, and whose ``pretrained_cfg`` gives the normalisation.
        num_views: views per image that ``forward`` expects in ``batch["views"]``.
    """

    encoder: TimmBackbone
    num_views: int

    def __call__(self, batch: dict) -> dict[str, Tensor]:
        """``forward(batch)``: ``{"loss": scalar with grad, **detached 0-d logs}``; updates the
        method's own state (momentum encoder, queues) as its algorithm says."""
        ...

    def begin_step(self, at: StepContext) -> None:
        """Called before every optimiser step (and before the first, also after a resume):
        set the per-step schedules the method owns (EMA momentum, warm-ups). A method with
        none does nothing."""
        ...
