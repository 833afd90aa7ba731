"""The segmentation-transfer recipe's config (defaults: the DenseCL / mmselfsup benchmark,
FCN R50-D8 769 x 769, 40k iterations on Cityscapes)."""
from __future__ import annotations

import dataclasses

from ..config import option
from ..transfer import TransferConfig
from ..schedule import schedule_iterations

__all__ = ["SegmentationConfig", "HEADS", "NORMS", "LR_POLICIES", "TEST_MODES"]

#: fcn: mmseg's FCNHead (convs, then the input concatenated); psp: PSPNet's pyramid pooling
HEADS = ("fcn", "psp")
#: syncbn: batch statistics over all processes (the protocols'); bn: per process
NORMS = ("syncbn", "bn")
#: poly: (1 - t/T)^power to min_lr (mmseg's Cityscapes / VOC); step: x0.1 at lr_steps (MoCo's d6)
LR_POLICIES = ("poly", "step")
#: slide: crops of test_crop every test_stride, logits averaged; whole: the image at once
TEST_MODES = ("slide", "whole")


@dataclasses.dataclass
class SegmentationConfig(TransferConfig):
    """Fine-tune a semantic-segmentation model on a pretrained backbone, evaluate mIoU, compare with random init."""

    data: str = option("scenes", "segmentation data: scenes | cityscapes:/path | voc:/VOCdevkit[?years=2012] | ade20k:/ADEChallengeData2016 | coco:/path (things from instance masks)")
    train_split: str = option("train", "split the model is trained on (VOC's train adds SegmentationClassAug's aug.txt when present)")
    val_split: str = option("val", "split mIoU is measured on")
    head: str = option("fcn", "decode head: fcn (mmseg's FCNHead) | psp (PSPNet's pyramid pooling)")
    output_stride: int = option(8, "CNN backbones: 8 (dilated last two stages, mmseg's R50-D8) | 16 (dilated last stage) | 32; a ViT runs at its patch stride")
    head_channels: int = option(512, "decode head width")
    head_convs: int = option(2, "FCN head: 3x3 convs before the classifier")
    head_dilation: int = option(1, "FCN head: dilation of its convs (6: MoCo's fcn_d6)")
    concat_input: bool = option(True, "FCN head: concatenate the backbone's map with the convs' output (mmseg's concat_input)")
    pool_scales: tuple[int, ...] = option((1, 2, 3, 6), "PSP head: the pyramid's pooled grid sizes")
    dropout: float = option(0.1, "Dropout2d before the classifier")
    aux_weight: float = option(0.4, "loss weight of the auxiliary FCN head on the second-last stage (0: none)")
    aux_channels: int = option(256, "auxiliary head width (one 3x3 conv)")
    align_corners: bool = option(True, "bilinear resizing of logits with align_corners (mmselfsup's Cityscapes FCN: true; mmseg's PSPNet and VOC: false)")
    norm: str = option("syncbn", "BN in backbone and heads: syncbn (the protocols') | bn (per process)")
    scale: tuple[int, int] = option((2049, 1025), "training resize target (long, short side) before the ratio; the image keeps its aspect ratio")
    ratio_range: tuple[float, float] = option((0.5, 2.0), "random factor of the training scale")
    crop_size: tuple[int, int] = option((769, 769), "training crop (height, width); smaller images are padded (label 255)")
    cat_max_ratio: float = option(0.75, "re-draw a crop (up to 10 times) where one class covers more than this share (1: never)")
    flip: float = option(0.5, "horizontal flip probability")
    photometric: bool = option(True, "mmseg's PhotoMetricDistortion (brightness, contrast, saturation, hue)")
    test_mode: str = option("slide", "slide (crops of test_crop every test_stride) | whole")
    test_scale: tuple[int, int] = option((2049, 1025), "evaluation resize target (long, short side), aspect ratio kept; predictions are scored at the label's size")
    test_crop: tuple[int, int] = option((769, 769), "slide: window (height, width)")
    test_stride: tuple[int, int] = option((513, 513), "slide: step between windows (height, width)")
    schedule: str = option("40000@8", "iterations: 40000@8 (40k at 8 images, scaled to this batch) | a number")
    lr: float = option(0.01, "SGD learning rate (as the protocols: not scaled with the batch)")
    lr_policy: str = option("poly", "poly | step")
    power: float = option(0.9, "poly: exponent")
    min_lr: float = option(1e-4, "poly: the lr it ends at")
    lr_steps: tuple[float, ...] = option((0.7, 0.9), "step: fractions of the schedule where the lr drops x0.1 (90k: 63k, 81k)")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(5e-4, "SGD weight decay (on every parameter, as mmseg)")
    batch_size: int = option(2, "images per process per step (the protocols: 8 or 16 in all)")
    eval_every: int = option(0, "iterations between evaluations during training, logged to train_log.jsonl (0: only at the end)")
    eval_images: int | None = option(None, "evaluate on the first N images of the split (none: all; quick runs)")
    output_dir: str = option("outputs/segmentation", "where checkpoints, logs and metrics.json go")
    save_every: int = option(4000, "iterations between checkpoints (0: only at the end)")

    def check(self) -> None:
        super().check()
        for name, allowed in (("head", HEADS), ("norm", NORMS), ("lr_policy", LR_POLICIES), ("test_mode", TEST_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        schedule_iterations(self.schedule, self.batch_size)  # refuses a bad schedule now
        for name in ("batch_size", "head_channels", "head_dilation", "aux_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("scale", "crop_size", "test_scale", "test_crop", "test_stride"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"{name} must be two positive sizes, got {value}")
        if self.test_mode == "slide" and any(s > c for s, c in zip(self.test_stride, self.test_crop)):
            raise ValueError(f"test_stride {self.test_stride} must not exceed test_crop {self.test_crop}: pixels between windows would have no prediction")
        if not 0 < self.ratio_range[0] <= self.ratio_range[1] or len(self.ratio_range) != 2:
            raise ValueError(f"ratio_range must be (low, high) with 0 < low <= high, got {self.ratio_range}")
        if not 0 < self.cat_max_ratio <= 1 or not 0 <= self.flip <= 1 or not 0 <= self.dropout < 1:
            raise ValueError("cat_max_ratio must be in (0, 1], flip in [0, 1] and dropout in [0, 1)")
        if self.aux_weight < 0 or self.head_convs < 0 or not self.pool_scales:
            raise ValueError("aux_weight and head_convs must be >= 0 and pool_scales not empty")
        if self.lr_policy == "step" and not all(0 < f < 1 for f in self.lr_steps):
            raise ValueError(f"lr_steps must be fractions in (0, 1), got {self.lr_steps}")
        if self.eval_images is not None and self.eval_images < 1:
            raise ValueError(f"eval_images must be >= 1 (or none: all), got {self.eval_images}")
