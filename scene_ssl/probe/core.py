"""A head on a frozen backbone, scored: the one core every probe calls.

The linear probe recipe, the kNN probe recipe, the probe after pretraining, the kNN monitor
and ``benchmarks/bench_learning.py`` all call :func:`linear_probe` / :func:`knn_probe` with
:class:`HeadOptions` (the one set of option names: the probe recipes' config fields, and the
pretraining config's with a ``probe_`` prefix, see :func:`head_options`), and score with
:func:`score`. Fine-tuning (:mod:`scene_ssl.finetune`) trains the backbone too and scores the
same way.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import datasets
import torch
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from ..data.views import warn_skipped
from ..data.workers import init_worker
from ..metrics import multilabel_metrics, singlelabel_metrics
from .features import BatchSlices, ProbeImages, batch_rows, collate_probe, extract_features, gather_indexed, pooled_features_fn
from .knn import knn_scores
from .linear import fit_linear_head, new_linear_head, probe_lr, train_linear_head
from ..processes import process_index

__all__ = ["HeadOptions", "head_options", "linear_probe", "knn_probe", "score", "Extract"]

#: ``extract(backbone, data, split) -> (features (N, C), targets (N, K))``: how a probe gets its
#: pooled features (the probe recipes cache them on disk)
Extract = Callable[[nn.Module, datasets.Dataset, str], tuple[Tensor, Tensor]]


@dataclasses.dataclass(frozen=True)
class HeadOptions:
    """How a probe sees the images and trains its head (defaults: the BAM authors' GAMP probe).

    Attributes:
        image_size: side the images are resized to (evaluation) or cropped at (training).
        pool: pooling of the last feature map: ``avgmax`` (GAMP) | ``avg`` | ``max``.
        epochs / batch_size / lr / weight_decay: the linear head's SGD (lr None: 10 x batch / 256).
        cache_features: the linear head trains on features extracted once (eval transform);
            False: RandomResizedCrop + flip through the frozen backbone every epoch.
        k / temperature: the kNN vote.
        num_workers / seed: the data loaders' workers; the head's initialisation and batches.
    """

    image_size: int
    pool: str = "avgmax"
    epochs: int = 100
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 0.0
    cache_features: bool = True
    k: int = 20
    temperature: float = 0.07
    num_workers: int = 2
    seed: int = 0


def head_options(cfg, prefix: str = "", **overrides) -> HeadOptions:
    """The :class:`HeadOptions` a config asks for: each option from its field ``prefix + name``
    when the config has one (the probe recipes: no prefix; pretraining: ``probe_``)."""
    values = {f.name: getattr(cfg, prefix + f.name) for f in dataclasses.fields(HeadOptions) if hasattr(cfg, prefix + f.name)}
    return HeadOptions(**{**values, **overrides})


def _extract(opts: HeadOptions, accelerator) -> Extract:
    def extract(backbone: nn.Module, data: datasets.Dataset, split: str) -> tuple[Tensor, Tensor]:
        return extract_features(backbone, data, image_size=opts.image_size, pool=opts.pool, batch_size=opts.batch_size,
                                num_workers=opts.num_workers, device=_device(backbone, accelerator), accelerator=accelerator)
    return extract


def _device(backbone: nn.Module, accelerator) -> torch.device:
    return accelerator.device if accelerator is not None else next(backbone.parameters()).device


def linear_probe(backbone: nn.Module, train: datasets.Dataset, val: datasets.Dataset, opts: HeadOptions, *,
                 accelerator=None, single_label: bool = False, extract: Extract | None = None,
                 show: bool = False) -> tuple[Tensor, Tensor]:
    """``(scores (N, K), targets (N, K))`` on ``val`` of a linear head trained on ``train``'s
    pooled features of the frozen ``backbone`` (BN in eval mode). With an ``accelerator`` the
    processes share the feature extraction and each fits the same head (no process idles in
    a collective while another computes). ``show``: progress bars."""
    extract = extract or _extract(opts, accelerator)
    f_val, y_val = extract(backbone, val, "val")
    if opts.cache_features:
        f_train, y_train = extract(backbone, train, "train")
        head = fit_linear_head(f_train, y_train, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                               weight_decay=opts.weight_decay, single_label=single_label, seed=opts.seed,
                               desc="linear head" if show else None)
    else:
        head = _online_head(backbone, train, opts, accelerator, single_label, show)
    with torch.no_grad():
        return head(f_val), y_val


def _online_head(backbone: nn.Module, train: datasets.Dataset, opts: HeadOptions, accelerator, single_label: bool,
                 show: bool) -> nn.Linear:
    """The authors' protocol without caching: RRC + flip through the frozen backbone each epoch.

    Every process decodes and embeds its slice of each batch, the batch is gathered back on
    all of them, and each steps the same head on it."""
    backbone.eval()
    device = _device(backbone, accelerator)
    features = pooled_features_fn(backbone, opts.pool, device)
    images = ProbeImages(train, opts.image_size, train=True, seed=opts.seed)
    batches = BatchSampler(RandomSampler(images, generator=torch.Generator().manual_seed(opts.seed)), opts.batch_size,
                           drop_last=True)
    rank, world = (process_index(), accelerator.num_processes) if accelerator is not None else (0, 1)
    loader = DataLoader(images, batch_sampler=BatchSlices(batches, rank, world), num_workers=opts.num_workers,
                        collate_fn=collate_probe, worker_init_fn=init_worker)
    skipped: set[str] = set()

    def epoch_batches(epoch: int):
        images.epoch = epoch
        for batch in loader:
            warn_skipped(batch["skipped"], skipped)
            with torch.no_grad():  # frozen backbone, BN in eval mode
                rows = batch_rows(batch, features, backbone.num_features, images.num_classes, device)
                _, f, t = gather_indexed(accelerator, -(-opts.batch_size // world), *rows)
            yield f, t

    head = new_linear_head(backbone.num_features, images.num_classes).to(device)
    train_linear_head(head, epoch_batches, len(loader), epochs=opts.epochs, lr=probe_lr(opts.batch_size, opts.lr),
                      weight_decay=opts.weight_decay, single_label=single_label,
                      desc="linear head (online)" if show else None)
    return head.cpu()


def knn_probe(backbone: nn.Module, train: datasets.Dataset, val: datasets.Dataset, opts: HeadOptions, *,
              accelerator=None, extract: Extract | None = None) -> tuple[Tensor, Tensor]:
    """``(scores (N, K), targets (N, K))`` on ``val``: the similarity-weighted label vote of the
    ``opts.k`` nearest ``train`` images (cosine of pooled frozen features); scores are vote
    fractions in [0, 1]."""
    extract = extract or _extract(opts, accelerator)
    f_train, y_train = extract(backbone, train, "train")
    f_val, y_val = extract(backbone, val, "val")
    return knn_scores(f_train, y_train, f_val, k=min(opts.k, len(f_train)), temperature=opts.temperature), y_val


def score(scores: Tensor, targets: Tensor, single_label: bool, **threshold) -> dict[str, float]:
    """Single-label: top-1, top-5, mean per-class accuracy (from the targets' argmax);
    multi-label: :func:`~scene_ssl.metrics.multilabel_metrics` (``threshold`` its options)."""
    if single_label:
        return singlelabel_metrics(scores, targets.argmax(1))
    return multilabel_metrics(scores, targets, **threshold)
