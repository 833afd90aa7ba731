"""PretrainConfig: the fields every pretraining recipe shares, and what a method's config adds.

Each method's config (``MLSConfig`` in ``mls.py``, ``BAMConfig`` in ``bam.py`` ...) extends
it with the method's hyperparameters (defaults: the paper's ResNet-50 COCO run) and says
what it builds: ``build_method()`` the method module, ``build_views()`` its view transform.
Each field's help text is its ``--help`` line; see :mod:`scene_ssl.config` for how YAML
files and flags override the defaults. ``check()`` refuses values that cannot train,
naming the field, before anything is built.
"""
from __future__ import annotations

import dataclasses
import sys

from torch import nn

from ..config import option
from ..processes import is_main_process
from ..data.sources import spec_usage
from ..data.views import RENDER_MODES
from ..data.workers import DEFAULT_WORKERS, THREADS_HELP, WORKERS_HELP, check_threads
from ..trackers import REPORT_TO_HELP, check_report_to
from ..transforms.multiview import MultiViewTransform

__all__ = ["PretrainConfig", "AUGMENT_ON", "MIXED_PRECISION"]

AUGMENT_ON = ("cpu", "gpu")  # the deprecated --augment-on / --decode-on values
MIXED_PRECISION = (None, "no", "bf16", "fp16")


@dataclasses.dataclass
class PretrainConfig:
    """Fields shared by every pretraining recipe."""

    # data
    data: str = option("scenes", f"training images: {spec_usage(' | ')} (scenes: the embedded set)")
    split: str = option("train", "split of --data to train on")
    image_size: int = option(224, "side of the square training views, px")
    crop_scale_min: float = option(0.2, "RandomResizedCrop keeps (crop-scale-min, 1.0) of the image area")
    hue_mode: str = option("yiq", "colour-jitter hue: yiq (one colour matrix, fast) | hsv (torchvision's exact hue)")
    render: str = option("cpu", "where the views are made: cpu (the data workers, PIL) | process (the workers decode; "
                                "the training process renders them in batches on its device) | device (the workers "
                                "read JPEG bytes; the training process decodes and renders them)")
    augment_on: str | None = option(None, "deprecated: --render process is the old 'gpu'")
    decode_on: str | None = option(None, "deprecated: --render device is the old 'gpu'")
    decode_max_side: int | None = option(None, "longest side an image is used at, px (none: 4 x image-size): larger photos "
                                               "are decoded smaller (JPEG) or resized, so a batch holds at most "
                                               "batch-size x side² x 3 bytes of images (the device renderer 4x that in float32)")
    num_workers: int = option(DEFAULT_WORKERS, WORKERS_HELP)
    threads: int | None = option(None, THREADS_HELP)
    shuffle_buffer: int = option(1000, "streamed data (wds:, hf:...?streaming=1): samples each worker shuffles among")
    # model
    backbone: str = option("resnet50", "any timm model name")
    pretrained: bool = option(False, "start from timm's pretrained weights")
    channels_last: bool = option(True, "channels-last memory format (faster convolutions on GPUs)")
    sync_bn: bool = option(False, "BatchNorm statistics over all processes (timm's convert_sync_batchnorm; GPUs only)")
    compile: bool = option(False, "torch.compile the backbones' trunks (the method's queues, EMA and schedules stay eager)")
    tf32: bool = option(False, "CUDA: TF32 matmuls too (convolutions use TF32 regardless, torch's default); faster heads, "
                               "but the loss's queue logits lose 13 mantissa bits of float32")
    # optimisation: SGD, cosine schedule, lr = base_lr x total batch / 256
    epochs: int = option(200, "length of the run in epochs")
    max_steps: int | None = option(None, "length of the run in optimiser steps (overrides --epochs)")
    stop_after: int | None = option(None, "end this run at that step with the schedule unchanged (time limits); go on with --resume auto")
    batch_size: int = option(256, "images per process per forward")
    base_lr: float = option(0.03, "learning rate per 256 images: lr = base_lr x total batch / 256")
    weight_decay: float = option(1e-4, "SGD weight decay")
    sgd_momentum: float = option(0.9, "SGD momentum")
    warmup_epochs: float = option(0.0, "linear learning-rate warm-up, epochs")
    grad_accum_steps: int = option(1, "forwards per optimiser step (gradient accumulation)")
    clip_grad_norm: float | None = option(None, "clip the gradient norm to this value")
    mixed_precision: str | None = option(None, "no | bf16 | fp16; none: the accelerate launch config")
    seed: int = option(0, "seed of the weights, the views and the data order")
    report_to: str = option("auto", REPORT_TO_HELP)
    # outputs
    output_dir: str = option("outputs/pretrain", "where checkpoints, logs, the export and config.yaml go")
    log_every: int = option(50, "optimiser steps between log lines (losses and diagnostics)")
    save_every: int = option(1000, "optimiser steps between checkpoints (0: only at the end)")
    keep_checkpoints: int = option(2, "checkpoints kept on disk")
    resume: str | None = option(None, "auto (resume if a checkpoint exists, else start) | latest | a checkpoint folder")
    export: bool = option(True, "export the backbone as a timm-loadable checkpoint at the end")
    export_tag: str | None = option(None, "name of the export (default: <arch>-<method>-<data>)")
    # evaluation
    monitor_every: int = option(0, "epochs between kNN checks of the backbone on --probe-data val (0: off)")
    probe_data: str | None = option(None, "after training, linear-probe the backbone and a random-init one on this data (none: skip)")
    probe_image_size: int = option(224, "image side of the probes, px")
    probe_epochs: int = option(100, "epochs of the linear probe's head")
    probe_pool: str = option("avgmax", "probe pooling: avgmax (GAMP) | avg | max")
    probe_num_workers: int | None = option(None, "data-loader processes of the kNN monitor and the probe after training "
                                                "(default: the smaller of 2 and --num-workers: the training's workers "
                                                "are still alive beside them)")

    def build_method(self) -> nn.Module:
        """The method module this config trains (its hyperparameters are checked here)."""
        raise NotImplementedError(f"{type(self).__name__} does not say which method it trains (build_method)")

    def build_views(self) -> MultiViewTransform:
        """The view transform: ``num_views`` views of each image, in the method's order."""
        raise NotImplementedError(f"{type(self).__name__} does not say how its views are made (build_views)")

    def probe_workers(self) -> int:
        """``probe_num_workers``, or the smaller of 2 and ``num_workers``."""
        return min(2, self.num_workers) if self.probe_num_workers is None else self.probe_num_workers

    def total_batch(self, num_processes: int) -> int:
        """Images per optimiser step over all processes."""
        return self.batch_size * num_processes * self.grad_accum_steps

    def lr(self, num_processes: int) -> float:
        """The papers' scaling rule: ``base_lr x total batch / 256``."""
        return self.base_lr * self.total_batch(num_processes) / 256

    def lr_rule(self, num_processes: int) -> str:
        """How :meth:`lr` was worked out, for the run's header line."""
        return f"base {self.base_lr} x {self.total_batch(num_processes)}/256"

    def _render_from_deprecated(self) -> None:
        """``augment_on`` / ``decode_on`` (the old names, whose "gpu" meant the training process's
        device, a CPU too) become ``render``, with a one-line notice, and are cleared, so the saved
        config speaks only of ``render``. They only ever ask for more of the device: ``gpu`` moves
        ``render`` up to ``process`` (augment) or ``device`` (decode), never down, so an old
        run's saved ``cpu`` values do not undo a ``--render`` given beside them."""
        if self.augment_on is None and self.decode_on is None:
            return
        for name in ("augment_on", "decode_on"):
            if getattr(self, name) not in (None, *AUGMENT_ON):
                raise ValueError(f"{name} must be one of {AUGMENT_ON} (deprecated: use render), got {getattr(self, name)!r}")
        asked = "device" if self.decode_on == "gpu" else "process" if self.augment_on == "gpu" else "cpu"
        if self.render in RENDER_MODES and RENDER_MODES.index(asked) > RENDER_MODES.index(self.render):
            self.render = asked
        old = " ".join(f"{n}: {getattr(self, n)}" for n in ("augment_on", "decode_on") if getattr(self, n) is not None)
        if is_main_process():
            print(f"note: {old} is deprecated (--render); this run renders: {self.render}", file=sys.stderr)
        self.augment_on, self.decode_on = None, None

    def check(self) -> None:
        """Refuse values that cannot train; each message names its field."""
        if self.max_steps is None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs} (a run that trains nothing exports an untrained backbone)")
        for name in ("max_steps", "stop_after"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum_steps", "log_every", "image_size", "probe_image_size", "probe_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "save_every", "keep_checkpoints", "monitor_every", "base_lr", "weight_decay", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.crop_scale_min <= 1:
            raise ValueError(f"crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        self._render_from_deprecated()
        if self.render not in RENDER_MODES:
            raise ValueError(f"render must be one of {RENDER_MODES}, got {self.render!r}")
        check_threads(self.threads)
        check_report_to(self.report_to)
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION[1:]}, got {self.mixed_precision!r}")
