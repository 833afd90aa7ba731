"""Load a backbone from wherever scene_ssl weights live."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import timm
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from .models import TimmBackbone
from .train.checkpoint import find_checkpoint

__all__ = ["load_backbone", "load_trunk", "export_folder", "trained_method"]


def load_backbone(source: str) -> TimmBackbone:
    """A :class:`TimmBackbone` from any checkpoint source.

    Args:
        source: ``hf-hub:org/name`` or ``local-dir:/path`` (timm loads it); an export folder
            (holds ``config.json``); a training output folder (its ``export/``, else the
            encoder of its newest checkpoint, architecture from its ``config.yaml``); or
            ``random:<timm name>`` for a randomly initialised baseline.

    Example:
        >>> load_backbone("random:test_resnet").num_features
        96
        >>> load_backbone("/nowhere")
        Traceback (most recent call last):
        ...
        ValueError: cannot load a backbone from '/nowhere': not hf-hub:, local-dir:, random:, an export folder or a training output folder
    """
    if source.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        return TimmBackbone(source, pretrained=True)
    if source.startswith("random:"):
        return TimmBackbone(source.split(":", 1)[1])
    path = Path(source)
    if (path / "config.json").is_file():
        return TimmBackbone(f"local-dir:{path.resolve()}", pretrained=True)
    if (path / "export" / "config.json").is_file():
        return TimmBackbone(f"local-dir:{(path / 'export').resolve()}", pretrained=True)
    if (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        cfg = yaml.safe_load((path / "config.yaml").read_text())
        backbone = TimmBackbone(cfg["backbone"])
        state = load_file(str(find_checkpoint("latest", path / "checkpoints") / "model.safetensors"))
        prefix = "encoder.model."
        encoder = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not encoder:
            raise ValueError(f"{path}: the checkpoint holds no '{prefix}*' weights")
        backbone.model.load_state_dict(encoder)
        return backbone
    raise ValueError(
        f"cannot load a backbone from {source!r}: not hf-hub:, local-dir:, random:, an export folder or a training output folder"
    )


def load_trunk(source: str, out_indices: tuple[int, ...] | None = None,
               backbone: TimmBackbone | None = None, **timm_kwargs: Any) -> tuple[nn.Module, dict, str]:
    """``(trunk, data_config, architecture)``: a timm ``features_only`` model holding exactly the
    weights of ``source`` (anything :func:`scene_ssl.loading.load_backbone` takes), loaded
    through timm's own pretrained-file path so that every architecture's renaming is timm's.
    ``out_indices`` picks the stages (default: all); ``backbone`` is ``source`` already loaded;
    ``timm_kwargs`` go to ``timm.create_model`` (``output_stride=8``, ``dynamic_img_size=True`` ...)."""
    backbone = backbone or load_backbone(source)
    arch = backbone.model.pretrained_cfg.get("architecture") or backbone.name
    data_config = timm.data.resolve_model_data_config(backbone.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        save_file({k: v.detach().contiguous() for k, v in backbone.model.state_dict().items()}, path)
        trunk = timm.create_model(arch, features_only=True, pretrained=True,
                                  pretrained_cfg_overlay={"file": path, "num_classes": 0},
                                  **({"out_indices": out_indices} if out_indices is not None else {}), **timm_kwargs)
    return trunk, data_config, arch


def export_folder(source: str) -> Path | None:
    """The local scene_ssl export folder a checkpoint source points at (one holding
    ``scene_ssl.json``), or None (Hub ids, random init, checkpoints without an export):
    where a probe writes its results into the model card.
    """
    path = Path(source.split(":", 1)[1]) if source.startswith("local-dir:") else Path(source)
    for folder in (path, path / "export"):
        if (folder / "scene_ssl.json").is_file() and (folder / "config.json").is_file():
            return folder
    return None


def trained_method(source: str) -> str | None:
    """The registry name of the method that trained ``source``: from its export's
    ``scene_ssl.json``, else from the newest checkpoint of a training output folder; None
    when the source does not say (Hub ids, random init, foreign checkpoints)."""
    folder = export_folder(source)
    if folder is not None:
        return json.loads((folder / "scene_ssl.json").read_text()).get("method")
    path = Path(source)
    if (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        state = find_checkpoint("latest", path / "checkpoints") / "trainer_state.json"
        return json.loads(state.read_text()).get("method")
    return None
