"""Semantic-segmentation models on any timm backbone, with mmseg's FCN and PSPNet heads.

The backbone is a timm ``features_only`` trunk holding exactly the pretrained weights. A CNN
runs at output stride 8 (or 16) through timm's ``output_stride``: the strides of the last
stages become dilations, the first block of a dilated stage keeping the previous dilation,
which is mmseg's ResNet-D8 with ``contract_dilation`` (see the tests). A ViT gives maps at
its patch stride (16) from its last blocks, at any input size (``dynamic_img_size``; an input
that is not a multiple of the patch is resized to the next one, so that its map covers the
whole image and the logits stay aligned). The
decode head reads the last map, the auxiliary FCN head (training only) the one before.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..loading import load_backbone, load_trunk

__all__ = ["ConvBNReLU", "FCNHead", "PSPHead", "Segmenter", "build_segmenter", "segmentation_trunk"]


class ConvBNReLU(nn.Sequential):
    """mmcv's ConvModule: conv (no bias; Kaiming normal, fan-out) + BN + ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int = 1) -> None:
        conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2 * dilation, dilation=dilation, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        super().__init__(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Classifier(nn.Module):
    """Dropout2d, then a 1x1 conv to the classes (weights N(0, 0.01), as mmseg's ``conv_seg``)."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_seg(self.dropout(x))


class FCNHead(nn.Module):
    """mmseg's FCNHead: ``num_convs`` 3x3 ConvBNReLU (dilated by ``dilation``), with
    ``concat_input`` the input concatenated to their output and fused by one more, then the classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, num_convs: int = 2, dilation: int = 1,
                 concat_input: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        if num_convs == 0 and in_channels != channels:
            raise ValueError(f"an FCN head without convs needs in_channels == channels, got {in_channels} and {channels}")
        self.convs = nn.Sequential(*[ConvBNReLU(in_channels if i == 0 else channels, channels, 3, dilation)
                                     for i in range(num_convs)])
        self.conv_cat = ConvBNReLU(in_channels + channels, channels, 3) if concat_input else None
        self.classifier = _Classifier(channels, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.classifier(out)


class PSPHead(nn.Module):
    """PSPNet's head (mmseg's PSPHead): the map average-pooled to each of ``pool_scales`` grids,
    1x1 ConvBNReLU each, resized back and concatenated with the map, a 3x3 bottleneck, the classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, pool_scales: tuple[int, ...] = (1, 2, 3, 6),
                 dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.pools = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(in_channels, channels, 1))
                                   for s in pool_scales)
        self.bottleneck = ConvBNReLU(in_channels + len(pool_scales) * channels, channels, 3)
        self.classifier = _Classifier(channels, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(pool(x), size=size, mode="bilinear", align_corners=self.align_corners) for pool in self.pools]
        return self.classifier(self.bottleneck(torch.cat([x, *pooled], dim=1)))


class Segmenter(nn.Module):
    """trunk -> decode head on its last map (+ auxiliary head on the one before, in training).

    ``forward(x)`` gives ``{"seg": logits, "aux": logits}`` at the maps' resolution (the loss
    resizes them to the labels'); :meth:`logits` gives the decode logits at the input's size."""

    def __init__(self, trunk: nn.Module, decode: nn.Module, aux: nn.Module | None = None, *,
                 align_corners: bool = False, multiple: int | None = None) -> None:
        super().__init__()
        self.trunk, self.decode, self.aux, self.align_corners = trunk, decode, aux, align_corners
        self.multiple = multiple  # a ViT: inputs resized to a multiple of the patch, so its map covers the whole image

    def _fit(self, x: Tensor) -> Tensor:
        if not self.multiple:
            return x
        m = self.multiple
        size = (-(-x.shape[-2] // m) * m, -(-x.shape[-1] // m) * m)
        return x if size == tuple(x.shape[-2:]) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        maps = self.trunk(self._fit(x))
        out = {"seg": self.decode(maps[-1])}
        if self.aux is not None and self.training:
            out["aux"] = self.aux(maps[-2])
        return out

    def logits(self, x: Tensor) -> Tensor:
        seg = self.decode(self.trunk(self._fit(x))[-1])
        return F.interpolate(seg, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)


def segmentation_trunk(source: str, output_stride: int = 8) -> tuple[nn.Module, dict, int | None]:
    """``(trunk, data_config, multiple)``: the last two maps of ``source``'s backbone, a CNN at
    ``output_stride`` (timm's dilation; ``multiple`` None), a ViT (maps of one stride) at its
    own (``multiple``: its patch stride, what its inputs are resized to a multiple of)."""
    backbone = load_backbone(source)
    reductions = [f["reduction"] for f in getattr(backbone.model, "feature_info", [])]
    pyramid = len(set(reductions)) != 1
    options = ({"output_stride": output_stride} if output_stride != 32 else {}) if pyramid else \
        {"dynamic_img_size": True}
    n = len(reductions)
    try:
        trunk, data_config, _ = load_trunk(source, (n - 2, n - 1) if n >= 2 else None, backbone, **options)
        return trunk, data_config, None if pyramid else reductions[-1]
    except TypeError as e:
        if "output_stride" in str(e):
            raise ValueError(f"{source}: this architecture cannot be dilated to output stride {output_stride} "
                             "(timm has no output_stride for it); use --output-stride 32") from None
        raise


def build_segmenter(source: str, num_classes: int, *, head: str = "fcn", output_stride: int = 8, channels: int = 512,
                    num_convs: int = 2, dilation: int = 1, concat_input: bool = True,
                    pool_scales: tuple[int, ...] = (1, 2, 3, 6), dropout: float = 0.1, aux_channels: int = 256,
                    aux: bool = True, align_corners: bool = False) -> tuple[Segmenter, dict]:
    """``(model, data_config)``: a :class:`Segmenter` on ``source``'s weights (anything
    :func:`scene_ssl.loading.load_backbone` takes) with a ``head`` (fcn | psp) decode head
    and, with ``aux``, mmseg's auxiliary FCN head (one conv, no concat)."""
    trunk, data_config, multiple = segmentation_trunk(source, output_stride)
    widths = trunk.feature_info.channels()
    if head == "psp":
        decode: nn.Module = PSPHead(widths[-1], channels, num_classes, pool_scales=pool_scales, dropout=dropout,
                                    align_corners=align_corners)
    else:
        decode = FCNHead(widths[-1], channels, num_classes, num_convs=num_convs, dilation=dilation,
                         concat_input=concat_input, dropout=dropout)
    aux_head = FCNHead(widths[-2], aux_channels, num_classes, num_convs=1, concat_input=False, dropout=dropout) \
        if aux and len(widths) > 1 else None
    return Segmenter(trunk, decode, aux_head, align_corners=align_corners, multiple=multiple), data_config
