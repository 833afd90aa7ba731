"""Any timm model as a headless feature extractor."""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import timm
import torch
from torch import Tensor, nn

__all__ = ["TimmBackbone"]


class TimmBackbone(nn.Module):
    """A timm model created with ``num_classes=0``: no classifier, pooled features out.

    The wrapped model is ``self.model``, untouched, so its ``state_dict`` is exactly the
    timm model's and exports load back with ``timm.create_model``.

    Args:
        name: any timm model name (``resnet50``, ``convnext_tiny``, ``vit_small_patch16_224`` ...).
        pretrained: load timm's pretrained weights (needs the Hub or a local cache).
        **timm_kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ``img_size`` ...).

    Example:
        >>> import torch
        >>> backbone = TimmBackbone("test_resnet")
        >>> backbone(torch.randn(2, 3, 64, 64)).shape == (2, backbone.num_features)
        True
        >>> backbone.feature_map(torch.randn(2, 3, 64, 64)).shape[:2] == (2, backbone.num_features)
        True
        >>> backbone = backbone.eval(); x = torch.randn(2, 3, 64, 64)
        >>> pooled, fmap = backbone.pooled_and_map(x)
        >>> torch.equal(pooled, backbone(x)), torch.equal(fmap, backbone.feature_map(x))
        (True, True)
    """

    def __init__(self, name: str, pretrained: bool = False, **timm_kwargs: Any) -> None:
        super().__init__()
        if "num_classes" in timm_kwargs:
            raise ValueError("TimmBackbone always creates the model with num_classes=0; do not pass num_classes")
        if not timm.is_model(name) and not name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
            raise ValueError(f"unknown timm model {name!r}; see timm.list_models()")
        self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, **timm_kwargs)
        self.name = name
        self.num_features: int = self.model.num_features
        self.compiled = False

    @property
    def stride(self) -> int:
        """Input pixels per position of the last feature map (32 for ResNets, the patch for ViTs)."""
        info = getattr(self.model, "feature_info", None)
        return int(info[-1]["reduction"]) if info else 1

    def check_input_size(self, size: int, name: str = "image_size") -> None:
        """Refuse an input side below half the stride: the last feature map would be mostly padding.

        Example:
            >>> TimmBackbone("test_resnet").check_input_size(7)
            Traceback (most recent call last):
            ...
            ValueError: image_size 7 is too small for test_resnet (stride 32): below 16 px its last feature map is mostly padding
        """
        if size < max(1, self.stride // 2):
            raise ValueError(f"{name} {size} is too small for {self.name} (stride {self.stride}): below {self.stride // 2} px "
                             "its last feature map is mostly padding")

    def compile_trunk(self) -> "TimmBackbone":
        """Run the trunk (``forward_features``, where the compute is) through ``torch.compile``
        from now on. The module and its ``state_dict`` stay as they are, so checkpoints,
        exports and deep copies (a momentum encoder) are unchanged; a copy compiles its own."""
        self.compiled = True
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features (B, num_features), pooled the way the timm model pools."""
        if self.compiled:
            return self.model.forward_head(self.forward_features(x))
        return self.model(x)

    def forward_features(self, x: Tensor) -> Tensor:
        """timm's unpooled output: a map (B, C, H, W) for CNNs, tokens (B, N, C) for ViTs."""
        if self.compiled:
            return _compiled_trunk(self.model, x)
        return self.model.forward_features(x)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last feature map as (B, C, H, W) for any architecture.

        CNN maps are returned as they are (NHWC models are permuted); for ViTs the prefix
        (class / register) tokens are dropped and the patch tokens laid back on their grid.
        """
        return self._as_map(self.forward_features(x), x)

    def pooled_and_map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(self(x), self.feature_map(x))`` from one pass through the trunk: the pooled
        features (B, num_features), pooled the way the timm model pools (average for CNNs,
        the class token for most ViTs), and the last map (B, C, H, W). For dense methods."""
        out = self.forward_features(x)
        return self.model.forward_head(out, pre_logits=True), self._as_map(out, x)

    def _as_map(self, out: Tensor, x: Tensor) -> Tensor:
        if out.ndim == 4:
            if getattr(self.model, "output_fmt", "NCHW") == "NHWC":
                out = out.permute(0, 3, 1, 2)
            return out
        if out.ndim != 3:
            raise ValueError(f"{self.name}: forward_features returned shape {tuple(out.shape)}, expected 3-D or 4-D")
        tokens = out[:, getattr(self.model, "num_prefix_tokens", 0) :]  # (B, N, C)
        n = tokens.shape[1]
        h, w = self._token_grid(x, n)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)  # (B, C, h, w)

    def _token_grid(self, x: Tensor, n: int) -> tuple[int, int]:
        patch = getattr(getattr(self.model, "patch_embed", None), "patch_size", None)
        if patch is not None:
            h, w = x.shape[-2] // patch[0], x.shape[-1] // patch[1]
            if h * w == n:
                return h, w
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{self.name}: cannot lay {n} tokens on a grid")
        return side, side


def _trunk(model: nn.Module, x: Tensor) -> Tensor:
    return model.forward_features(x)


@functools.cache
def _compiled() -> Callable[[nn.Module, Tensor], Tensor]:
    # made at the first use (importing dynamo costs seconds); the model is an argument, not
    # captured: one compiled function serves every backbone and every copy of one
    return torch.compile(_trunk)


def _compiled_trunk(model: nn.Module, x: Tensor) -> Tensor:
    return _compiled()(model, x)
