"""Export a backbone as a timm-loadable Hugging Face checkpoint folder.

``save_pretrained`` writes ``model.safetensors`` + ``config.json`` through timm's
``save_for_hf`` (so ``timm.create_model('local-dir:...')`` and, once uploaded,
``timm.create_model('hf-hub:org/name', pretrained=True)`` load it), with *our own*
``pretrained_cfg``: timm's would otherwise carry the registry default's tag, license and
description (e.g. ``tag: a1_in1k``) into an export that never saw those weights. A
``README.md`` model card is rendered from the top-level ``MODEL_CARD.md`` template, with
the metrics as ``eval_results`` so that the Hub shows them, and the training config.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from timm.models import save_for_hf
from torch import nn

from .metrics import METRIC_NAMES

__all__ = ["save_pretrained", "CITATIONS", "METRIC_NAMES"]

#: keys of timm's pretrained_cfg that describe the architecture and its input, not a source checkpoint
_KEEP = ("architecture", "input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode", "pool_size",
         "first_conv", "classifier", "fixed_input_size", "min_input_size")

CITATIONS = {
    "mls": """```bibtex
@inproceedings{zhu2023mls,
  title     = {Multi-Label Self-Supervised Learning with Scene Images},
  author    = {Zhu, Ke and Fu, Minghao and Wu, Jianxin},
  booktitle = {ICCV},
  year      = {2023}
}
```""",
    "bam": """```bibtex
@article{chen2025bam,
  title   = {Self-Supervised Contrastive Learning for Multi-Label Images},
  author  = {Chen, Jiale},
  journal = {arXiv:2506.23156},
  year    = {2025}
}
```""",
    "mocov2": """```bibtex
@article{chen2020mocov2,
  title   = {Improved Baselines with Momentum Contrastive Learning},
  author  = {Chen, Xinlei and Fan, Haoqi and Girshick, Ross and He, Kaiming},
  journal = {arXiv:2003.04297},
  year    = {2020}
}
```""",
    "simsiam": """```bibtex
@inproceedings{chen2021simsiam,
  title     = {Exploring Simple Siamese Representation Learning},
  author    = {Chen, Xinlei and He, Kaiming},
  booktitle = {CVPR},
  year      = {2021}
}
```""",
}
_METHOD_NAMES = {"mls": "MLS", "bam": "BAM + IA-CLoss", "mocov2": "MoCo v2", "simsiam": "SimSiam"}


def _template() -> str:
    for path in (Path(__file__).resolve().parents[1] / "MODEL_CARD.md", Path(__file__).with_name("MODEL_CARD.md")):
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError("MODEL_CARD.md template not found next to the scene_ssl package")


def _method_key(tag: str) -> str:
    head = tag.split("_", 1)[0].lower()
    return head if head in CITATIONS else "mls"


def _dataset_name(spec: str | None) -> str:
    if not spec:
        return "unknown"
    kind, _, arg = spec.partition(":")
    if kind == "hf":
        return arg
    if kind == "coco":
        return "coco"
    return kind


def save_pretrained(
    backbone: nn.Module,
    out_dir: str | os.PathLike,
    *,
    tag: str,
    metrics: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    license: str = "apache-2.0",
    description: str | None = None,
    input_size: int | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``backbone`` (a timm model or :class:`~scene_ssl.models.TimmBackbone`) to ``out_dir``.

    Args:
        tag: pretrained tag, e.g. ``"mls_coco"``; also picks the card's method and citation.
        metrics: probe results, e.g. ``{"mAP": 61.2, "CF1": ..., "dataset": "coco", "pool": "avgmax"}``;
            the seven multi-label metrics present become the card's ``eval_results``.
        train_config: the resolved training config, embedded in the card and in ``scene_ssl.json``.
        input_size: training resolution (default: ``train_config["image_size"]`` or timm's).
        repo_id: the Hub name the card should tell users to load (default: the local folder).

    Returns:
        The folder, loadable with ``timm.create_model(f"local-dir:{folder}", pretrained=True)``.
    """
    model = getattr(backbone, "model", backbone)
    if not hasattr(model, "pretrained_cfg") or not hasattr(model, "num_features"):
        raise ValueError("save_pretrained expects a timm model (or a TimmBackbone wrapping one)")
    if not tag or not isinstance(tag, str):
        raise ValueError(f"tag must be a non-empty string, got {tag!r}")
    out = Path(out_dir)
    train_config = dict(train_config or {})
    size = int(input_size or train_config.get("image_size") or model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    method = _method_key(tag)
    dataset = _dataset_name(train_config.get("data"))
    description = description or (
        f"{model.pretrained_cfg.get('architecture', type(model).__name__)} pretrained with {_METHOD_NAMES[method]} "
        f"(self-supervised, no labels) on {dataset} by scene_ssl."
    )
    data_cfg = timm.data.resolve_model_data_config(model)
    ours = {k: copy.deepcopy(v) for k, v in model.pretrained_cfg.items() if k in _KEEP}
    ours.update(tag=tag, license=license, description=description, num_classes=model.num_classes,
                mean=tuple(data_cfg["mean"]), std=tuple(data_cfg["std"]), input_size=(3, size, size), crop_pct=1.0)

    # a private copy: save_config_for_hf reads model.pretrained_cfg, and safetensors wants
    # contiguous weights (training may have made them channels-last)
    model = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)
    model.pretrained_cfg = ours
    save_for_hf(model, str(out), safe_serialization=True,
                data_config={"input_size": (3, size, size), "mean": ours["mean"], "std": ours["std"], "crop_pct": 1.0})

    metrics = dict(metrics or {})
    (out / "scene_ssl.json").write_text(json.dumps({"tag": tag, "metrics": metrics, "train_config": train_config},
                                                   indent=1, default=str))
    _write_card(out, ours, model, method, dataset, metrics, train_config, repo_id)
    return out


def _write_card(out: Path, cfg: dict, model, method: str, dataset: str, metrics: dict,
                train_config: dict, repo_id: str | None) -> None:
    eval_results = [
        EvalResult(task_type="image-classification", task_name="multi-label linear probe",
                   dataset_type=metrics.get("dataset_type", dataset), dataset_name=metrics.get("dataset", dataset),
                   dataset_split=metrics.get("split", "val"), metric_type=name, metric_name=f"{name} ({metrics.get('pool', 'avgmax')})",
                   metric_value=round(float(metrics[name]), 2))
        for name in METRIC_NAMES if name in metrics
    ]
    name = repo_id or out.name
    card_data = ModelCardData(
        library_name="timm", license=cfg["license"], model_name=name,
        tags=["image-feature-extraction", "timm", "self-supervised", "scene_ssl", method],
        datasets=[dataset] if dataset not in ("scenes", "folder", "unknown") else None,
        eval_results=eval_results or None, pipeline_tag="image-feature-extraction",
    )
    rows = [(k, v) for k, v in train_config.items() if v is not None]
    table = ""
    if eval_results:
        table = ("| metric | value |\n|---|---|\n" + "\n".join(f"| {r.metric_type} | {r.metric_value} |" for r in eval_results)
                 + f"\n\nLinear probe on frozen features, pool `{metrics.get('pool', 'avgmax')}`, {metrics.get('dataset', dataset)} {metrics.get('split', 'val')}.")
    card = ModelCard.from_template(
        card_data, template_str=_template(), description=cfg["description"], architecture=cfg.get("architecture", ""),
        method=_METHOD_NAMES[method], dataset=dataset, load_name=f"hf-hub:{repo_id}" if repo_id else f"local-dir:{out.resolve()}",
        num_features=model.num_features, input_size=cfg["input_size"], mean=cfg["mean"], std=cfg["std"],
        metrics_table=table, train_rows=rows, citation=CITATIONS[method],
    )
    card.save(str(out / "README.md"))
