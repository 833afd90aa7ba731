"""The detection-transfer recipe's config (defaults: the MoCo / MLS protocol, Mask R-CNN R50-FPN 1x on COCO)."""
from __future__ import annotations

import dataclasses

from ..config import option
from ..transfer import TransferConfig
from ..schedule import schedule_iterations
from ..data.sources import default_splits
from .data import BBOX_FORMATS
from .model import ARCHITECTURES, BOX_HEADS, NORMS, TASKS

__all__ = ["DetectionConfig", "schedule_iterations"]

@dataclasses.dataclass
class DetectionConfig(TransferConfig):
    """Fine-tune a detector on a pretrained backbone, evaluate COCO AP, compare with random init."""

    data: str = option("scenes", "detection data: scenes | coco:/path | voc:/VOCdevkit[?years=2007,2012] | hf:<repo or folder> (objects with bbox and category)")
    bbox_format: str = option("xyxy", "hf: data only: objects.bbox as xyxy (detection-datasets) | xywh (COCO)")
    train_split: str | None = option(None, "split the detector is trained on (default: the data's own: train, VOC's trainval)")
    val_split: str | None = option(None, "split AP is measured on (default: the data's own: val, VOC's test)")
    task: str = option("segm", "bbox (Faster R-CNN) | segm (Mask R-CNN, box and mask AP; needs masks)")
    architecture: str = option("fpn", "fpn (an FPN over the stages) | c4 (MoCo's / the BAM authors' R50-C4: stride-16 trunk, the last stage as RoI head)")
    box_head: str = option("2fc", "FPN box head: 2fc (Detectron2's standard) | 4conv1fc (DenseCL / ORL; BN in it and in the mask head with bn / syncbn)")
    extra_norm: bool = option(True, "C4: a BN after the last stage in the RoI head (MoCo's Res5ROIHeadsExtraNorm)")
    norm: str = option("syncbn", "BN in backbone, FPN and heads: syncbn (MoCo / MLS protocol) | bn (per process) | frozen")
    fpn_channels: int = option(256, "FPN and head width")
    anchor_scale: float = option(8.0, "anchor size = scale x stride (8: 32-512 px on strides 4-64)")
    train_sizes: tuple[int, ...] = option((640, 672, 704, 736, 768, 800), "shorter side at training, one drawn per batch")
    test_size: int = option(800, "shorter side at evaluation")
    max_size: int = option(1333, "longer side cap")
    rois_per_image: int = option(512, "RoIs sampled per image for the box head")
    proposals_train: int = option(2000, "RPN proposals kept per image at training")
    proposals_test: int = option(1000, "RPN proposals kept per image at evaluation")
    pre_nms_train: int | None = option(None, "RPN proposals before NMS at training (default: proposals_train; Detectron2's C4: 12000)")
    pre_nms_test: int | None = option(None, "RPN proposals before NMS at evaluation (default: proposals_test; Detectron2's C4: 6000)")
    schedule: str = option("1x", "1x (90k iterations at 16 images) | 2x | ... | 24000@16 (iterations at a batch, scaled to this one) | a number of iterations")
    lr_steps: tuple[float, ...] = option((2 / 3, 8 / 9), "fractions of the schedule where the lr drops x0.1 (1x: 60k and 80k of 90k; VOC 24k: 0.75, 0.9167)")
    batch_size: int = option(2, "images per process per step")
    eval_images: int | None = option(None, "evaluate on the first N images of the split (none: all; quick runs)")
    eval_batch_size: int = option(1, "images per forward pass at evaluation (1, as Detectron2 and torchvision's references: no padding shared between images)")
    base_lr: float = option(0.02, "learning rate per 16 images: lr = base_lr x total batch / 16")
    weight_decay: float = option(1e-4, "SGD weight decay")
    momentum: float = option(0.9, "SGD momentum")
    warmup_iters: int = option(1000, "linear warm-up from 0.001 x lr (scaled with the schedule)")
    output_dir: str = option("outputs/detection", "where checkpoints, logs and metrics.json go")
    save_every: int = option(5000, "iterations between checkpoints (0: only at the end)")

    def check(self) -> None:
        super().check()
        self.train_split, self.val_split = default_splits(self.data, self.train_split, self.val_split)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.eval_images is not None and self.eval_images < 1:
            raise ValueError(f"eval_images must be >= 1 (or none: all), got {self.eval_images}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.box_head not in BOX_HEADS:
            raise ValueError(f"box_head must be one of {BOX_HEADS}, got {self.box_head!r}")
        if not self.lr_steps or not all(0 < f < 1 for f in self.lr_steps):
            raise ValueError(f"lr_steps must be fractions in (0, 1), got {self.lr_steps}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.bbox_format not in BBOX_FORMATS:
            raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {self.bbox_format!r}")
        schedule_iterations(self.schedule, self.batch_size)  # refuses a bad schedule now
        for name in ("batch_size", "eval_batch_size", "fpn_channels", "test_size", "max_size", "rois_per_image", "proposals_train",
                     "proposals_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.train_sizes or min(self.train_sizes) < 1:
            raise ValueError(f"train_sizes must be positive sizes, got {self.train_sizes}")
