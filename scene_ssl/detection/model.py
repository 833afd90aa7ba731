"""torchvision's Faster / Mask R-CNN on any timm backbone: a ``features_only`` trunk with the
exact pretrained weights, an FPN over its stages (or MoCo's C4), and the R-CNN heads.

FPN: CNNs (ResNet, ConvNeXt ...) give one map per stage (strides 4-32): the FPN takes the
last four. A ViT gives maps of one stride (16): a minimal simple feature pyramid (ViTDet)
makes strides 8 / 16 / 32 of it first. The FPN adds a max-pooled level, as Detectron2's does.
C4 (the MoCo / BAM protocols): the CNN up to stride 16, its last stage as the RoI head.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import timm
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign, roi_align
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..loading import load_backbone, load_trunk

__all__ = ["NORMS", "TASKS", "ARCHITECTURES", "BOX_HEADS", "TimmFPN", "TimmC4", "load_trunk", "load_c4", "build_detector"]

#: frozen: the pretrained BN statistics, fixed (Detectron2's default for ImageNet backbones);
#: bn: batch statistics of each process; syncbn: over all processes (the MoCo / MLS protocol)
NORMS = ("syncbn", "bn", "frozen")
TASKS = ("bbox", "segm")
#: fpn: an FPN over the stages; c4: the stride-16 trunk with the last stage as RoI head (MoCo's R50-C4)
ARCHITECTURES = ("fpn", "c4")
#: the FPN's box head: Detectron2's standard 2 fc | DenseCL / ORL's 4 conv + 1 fc
BOX_HEADS = ("2fc", "4conv1fc")


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


class _RoIAlign(MultiScaleRoIAlign):
    """One map's RoIAlign as Detectron2's ``ROIAlignV2`` (pixel-centred, ``aligned=True``,
    adaptive sampling), where torchvision's pooler is not aligned (its type is kept: the R-CNNs
    check for it)."""

    def __init__(self, output_size: int, stride: int) -> None:
        super().__init__(["0"], output_size, sampling_ratio=0)
        self.output_size, self.scale = output_size, 1.0 / stride

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes) -> Tensor:
        return roi_align(features["0"], proposals, self.output_size, spatial_scale=self.scale, sampling_ratio=0,
                         aligned=True)


class _Res5Head(nn.Module):
    """C4's box head: the backbone's last stage on 14 x 14 RoI features (-> 7 x 7), MoCo's extra
    norm after it (``Res5ROIHeadsExtraNorm``: a fresh BN), then the spatial mean (B, C)."""

    def __init__(self, res5: nn.Module, channels: int, extra_norm: bool) -> None:
        super().__init__()
        self.res5 = res5
        self.norm = nn.BatchNorm2d(channels) if extra_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.res5(x)).mean(dim=(2, 3))


class _SharedRes5(nn.Module):
    """The mask branch of C4: the box head's res5 and extra norm (the same weights, held by
    reference so that the state dict lists them once) on the mask RoIs, 7 x 7 maps out."""

    def __init__(self, box_head: _Res5Head) -> None:
        super().__init__()
        object.__setattr__(self, "_box_head", box_head)  # not a submodule: no second copy of the weights

    def forward(self, x: Tensor) -> Tensor:
        return self._box_head.norm(self._box_head.res5(x))


class TimmC4(nn.Module):
    """The C4 trunk torchvision's R-CNNs expect: ``x -> {"0": stride-16 map}``: every stage of
    the timm model but the last, which becomes the RoI head (:func:`load_c4`)."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_channels = trunk.feature_info.channels()[-1]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict([("0", self.trunk(x)[-1])])


def load_c4(source: str) -> tuple[nn.Module, nn.Module, int, dict]:
    """``(stride-16 trunk, last stage, its output channels, data config)`` of ``source``'s CNN,
    with exactly its weights (the trunk through timm ``features_only``, as :func:`load_trunk`)."""
    backbone = load_backbone(source)
    model = backbone.model
    info = getattr(model, "feature_info", None)
    if not info or len({i["reduction"] for i in info}) == 1:
        raise ValueError(f"architecture c4 needs a CNN with strided stages; {backbone.name} has none (use fpn)")
    if info[-2]["reduction"] != 16:
        raise ValueError(f"architecture c4 needs a stride-16 stage before the last one; {backbone.name}'s is "
                         f"{info[-2]['reduction']}")
    trunk, data_config, _ = load_trunk(source, out_indices=(len(info) - 2,), backbone=backbone)
    res5 = copy.deepcopy(model.get_submodule(info[-1]["module"]))
    return trunk, res5, info[-1]["num_chs"], data_config


def build_detector(source: str, num_classes: int, *, task: str = "bbox", norm: str = "syncbn",
                   architecture: str = "fpn", box_head: str = "2fc", extra_norm: bool = True, fpn_channels: int = 256,
                   anchor_scale: float = 8.0, train_sizes: tuple[int, ...] = (800,), max_size: int = 1333,
                   rois_per_image: int = 512, proposals: tuple[int, int] = (2000, 1000),
                   pre_nms: tuple[int, int] | None = None) -> nn.Module:
    """A Faster R-CNN (``task="bbox"``) or Mask R-CNN (``"segm"``) with ``num_classes`` classes
    on the backbone of ``source``.

    ``architecture="fpn"``: an FPN over the backbone's stages; anchors ``anchor_scale`` x stride on
    each level (8: Detectron2's 32-512 px on strides 4-64); the box head is ``2fc`` (Detectron2's
    standard, two 1024 fc layers) or ``4conv1fc`` (4 convolutions + 1 fc, as DenseCL / ORL's
    COCO protocol), with BN in its convolutions and in the mask head when the backbone's norm is
    ``bn`` / ``syncbn``. ``architecture="c4"`` (MoCo's VOC / COCO protocol, the BAM authors'):
    the stride-16 trunk, anchors 32-512 px on it, RoIAlign (aligned) 14 x 14, the backbone's
    last stage as the box head (and the mask head's trunk, shared) with ``extra_norm`` after it.

    ``syncbn`` is applied by the training loop (:func:`timm.layers.convert_sync_batchnorm`);
    ``frozen`` fixes the pretrained BN statistics. Images are normalised with the backbone's own
    mean / std. ``rois_per_image`` (512) and the RPN's ``proposals`` kept after NMS in training /
    testing (2000 / 1000; ``pre_nms`` before it, default the same) are Detectron2's.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if box_head not in BOX_HEADS:
        raise ValueError(f"box_head must be one of {BOX_HEADS}, got {box_head!r}")
    pre_nms = pre_nms or proposals
    parts = _c4_parts(source, num_classes, norm, extra_norm) if architecture == "c4" else \
        _fpn_parts(source, num_classes, norm, box_head, fpn_channels, anchor_scale)
    body, data_config, heads, mask = parts
    common = dict(min_size=tuple(train_sizes), max_size=max_size, image_mean=list(data_config["mean"]),
                  image_std=list(data_config["std"]), box_batch_size_per_image=rois_per_image,
                  rpn_pre_nms_top_n_train=pre_nms[0], rpn_post_nms_top_n_train=proposals[0],
                  rpn_pre_nms_top_n_test=pre_nms[1], rpn_post_nms_top_n_test=proposals[1], **heads)
    if task == "bbox":
        return FasterRCNN(body, **common)
    return MaskRCNN(body, **mask, **common)


def _fpn_parts(source, num_classes, norm, box_head, channels, anchor_scale):
    trunk, data_config, _ = load_trunk(source)
    if norm == "frozen":
        trunk = timm.layers.freeze_batch_norm_2d(trunk)
    body = TimmFPN(trunk, channels, norm)
    levels = [str(i) for i in range(len(body.strides) - 1)]  # the RoI poolers skip the max-pooled level
    anchors = AnchorGenerator(sizes=tuple((int(anchor_scale * s),) for s in body.strides),
                              aspect_ratios=((0.5, 1.0, 2.0),) * len(body.strides))
    bn = nn.BatchNorm2d if norm in ("bn", "syncbn") else None
    if box_head == "4conv1fc":
        head = FastRCNNConvFCHead((channels, 7, 7), [channels] * 4, [1024], norm_layer=bn)
    else:
        head = TwoMLPHead(channels * 7 * 7, 1024)
    heads = dict(rpn_anchor_generator=anchors, box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
                 box_head=head, box_predictor=FastRCNNPredictor(1024, num_classes + 1))
    mask_norm = bn if box_head == "4conv1fc" else None  # Detectron2's standard mask head has none; DenseCL's has SyncBN
    mask = dict(mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
                mask_head=MaskRCNNHeads(channels, [channels] * 4, 1, norm_layer=mask_norm),
                mask_predictor=MaskRCNNPredictor(channels, channels, num_classes + 1))
    return body, data_config, heads, mask


def _c4_parts(source, num_classes, norm, extra_norm):
    trunk, res5, channels, data_config = load_c4(source)
    if norm == "frozen":
        trunk, res5 = timm.layers.freeze_batch_norm_2d(trunk), timm.layers.freeze_batch_norm_2d(res5)
    body = TimmC4(trunk)
    box_head = _Res5Head(res5, channels, extra_norm)
    anchors = AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
    heads = dict(rpn_anchor_generator=anchors, box_roi_pool=_RoIAlign(14, 16), box_head=box_head,
                 box_predictor=FastRCNNPredictor(channels, num_classes + 1))
    # the mask branch runs the same res5 (and extra norm) on its 14 x 14 RoIs, then Detectron2's
    # C4 mask head: a 2x2 transposed conv to 256 channels and a 1x1 conv per class
    mask = dict(mask_roi_pool=_RoIAlign(14, 16), mask_head=_SharedRes5(box_head),
                mask_predictor=MaskRCNNPredictor(channels, 256, num_classes + 1))
    return body, data_config, heads, mask
