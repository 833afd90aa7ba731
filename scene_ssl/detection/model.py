"""torchvision's Faster / Mask R-CNN on any timm backbone: a ``features_only`` trunk with the
exact pretrained weights, an FPN over its stages, and the R-CNN heads.

CNNs (ResNet, ConvNeXt ...) give one map per stage (strides 4-32): the FPN takes the last
four. A ViT gives maps of one stride (16): a minimal simple feature pyramid (ViTDet) makes
strides 8 / 16 / 32 of it first. The FPN adds a max-pooled level, as Detectron2's does.
"""
from __future__ import annotations

import os
import tempfile
from collections import OrderedDict

import timm
from safetensors.torch import save_file
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..loading import load_backbone

__all__ = ["NORMS", "TASKS", "TimmFPN", "load_trunk", "build_detector"]

#: frozen: the pretrained BN statistics, fixed (Detectron2's default for ImageNet backbones);
#: bn: batch statistics of each process; syncbn: over all processes (the MoCo / MLS protocol)
NORMS = ("syncbn", "bn", "frozen")
TASKS = ("bbox", "segm")


def load_trunk(source: str) -> tuple[nn.Module, dict, str]:
    """``(trunk, data_config, architecture)``: a timm ``features_only`` model holding exactly the
    weights of ``source`` (anything :func:`scene_ssl.loading.load_backbone` takes), loaded
    through timm's own pretrained-file path so that every architecture's renaming is timm's."""
    backbone = load_backbone(source)
    arch = backbone.model.pretrained_cfg.get("architecture") or backbone.name
    data_config = timm.data.resolve_model_data_config(backbone.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        save_file({k: v.detach().contiguous() for k, v in backbone.model.state_dict().items()}, path)
        trunk = timm.create_model(arch, features_only=True, pretrained=True,
                                  pretrained_cfg_overlay={"file": path, "num_classes": 0})
    return trunk, data_config, arch


class _SimplePyramid(nn.Module):
    """One stride-s map -> maps at s/2, s, 2s (a transposed conv up, a max-pool down)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
        self.down = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.up(x), x, self.down(x)]


class TimmFPN(nn.Module):
    """The backbone torchvision's R-CNNs expect: ``x -> OrderedDict`` of FPN maps (``"0"`` ...,
    ``"pool"``) with ``out_channels`` channels; ``strides`` lists each map's stride."""

    def __init__(self, trunk: nn.Module, out_channels: int = 256, norm: str = "syncbn") -> None:
        super().__init__()
        self.trunk = trunk
        channels, reductions = trunk.feature_info.channels(), trunk.feature_info.reduction()
        if len(set(reductions)) == 1:  # a ViT: one stride
            self.pyramid = _SimplePyramid(channels[-1])
            in_channels, strides = [channels[-1]] * 3, [reductions[-1] // 2, reductions[-1], reductions[-1] * 2]
        else:
            self.pyramid = None
            in_channels, strides = channels[-4:], reductions[-4:]
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool(),
                                         norm_layer=nn.BatchNorm2d if norm in ("bn", "syncbn") else None)
        self.out_channels = out_channels
        self.strides = [*strides, strides[-1] * 2]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.trunk(x)
        feats = self.pyramid(feats[-1]) if self.pyramid is not None else feats[-4:]
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def build_detector(source: str, num_classes: int, *, task: str = "bbox", norm: str = "syncbn", fpn_channels: int = 256,
                   anchor_scale: float = 8.0, train_sizes: tuple[int, ...] = (800,), max_size: int = 1333,
                   rois_per_image: int = 512, proposals: tuple[int, int] = (2000, 1000)) -> nn.Module:
    """A Faster R-CNN (``task="bbox"``) or Mask R-CNN (``"segm"``) with ``num_classes`` classes
    on the backbone of ``source``.

    Anchors are ``anchor_scale`` x stride on each level (8: Detectron2's 32-512 px on strides
    4-64). With BN (``bn`` / ``syncbn``) the box head is 4 conv + 1 fc with BN and the mask
    head has BN too, as in MoCo's detection configs; ``frozen`` keeps torchvision's plain
    heads, and the heads' convolutions are ``fpn_channels`` wide. ``syncbn`` is applied by the
    training loop (:func:`timm.layers.convert_sync_batchnorm`). The images are normalised with
    the backbone's own mean / std. ``rois_per_image`` (512) and the RPN's ``proposals`` kept
    after NMS in training / testing (2000 / 1000) are Detectron2's; small runs on a CPU use fewer.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    trunk, data_config, _ = load_trunk(source)
    if norm == "frozen":
        trunk = timm.layers.freeze_batch_norm_2d(trunk)
    body = TimmFPN(trunk, fpn_channels, norm)
    levels = [str(i) for i in range(len(body.strides) - 1)]  # the RoI poolers skip the max-pooled level
    anchors = AnchorGenerator(sizes=tuple((int(anchor_scale * s),) for s in body.strides),
                              aspect_ratios=((0.5, 1.0, 2.0),) * len(body.strides))
    bn = nn.BatchNorm2d if norm in ("bn", "syncbn") else None
    if bn is not None:
        box_head = FastRCNNConvFCHead((fpn_channels, 7, 7), [fpn_channels] * 4, [1024], norm_layer=bn)
    else:
        box_head = TwoMLPHead(fpn_channels * 7 * 7, 1024)
    common = dict(min_size=tuple(train_sizes), max_size=max_size, image_mean=list(data_config["mean"]),
                  image_std=list(data_config["std"]), rpn_anchor_generator=anchors,
                  box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2), box_head=box_head,
                  box_predictor=FastRCNNPredictor(1024, num_classes + 1), box_batch_size_per_image=rois_per_image,
                  rpn_pre_nms_top_n_train=proposals[0], rpn_post_nms_top_n_train=proposals[0],
                  rpn_pre_nms_top_n_test=proposals[1], rpn_post_nms_top_n_test=proposals[1])
    if task == "bbox":
        return FasterRCNN(body, **common)
    return MaskRCNN(body, mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
                    mask_head=MaskRCNNHeads(fpn_channels, [fpn_channels] * 4, 1, norm_layer=bn),
                    mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes + 1), **common)
