"""Export a backbone as a timm-loadable Hugging Face checkpoint folder, with its results.

``save_pretrained`` writes ``model.safetensors`` + ``config.json`` through timm's
``save_for_hf`` (so ``timm.create_model('local-dir:...')`` and, once uploaded,
``timm.create_model('hf-hub:org/name', pretrained=True)`` load it), with *our own*
``pretrained_cfg``: timm's would otherwise carry the registry default's tag, license and
description (e.g. ``tag: a1_in1k``) into an export that never saw those weights, and a
``pool_size`` for 224 px. ``scene_ssl.json`` holds the export's name, the training config
and every evaluation result; ``add_results`` adds the results of a later probe or
detection run. The ``README.md`` model card is rendered from ``scene_ssl.json`` (see
:mod:`scene_ssl.card`), with the results as huggingface_hub ``eval_results``.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import timm
import torch
from timm.models import save_for_hf
from torch import nn

from .card import dataset_name, write_card
from .durable import disk_full_error, require_free_space, sync_entries, sync_folder, tensor_bytes
from .models import get_method, method_names
from .processes import is_main_process

__all__ = ["save_pretrained", "export_run", "add_results", "read_export", "export_name", "evaluation_result",
           "method_record"]

#: keys of timm's pretrained_cfg that describe the architecture and its input, not a source checkpoint
_KEEP = ("architecture", "input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode", "pool_size",
         "first_conv", "classifier", "fixed_input_size", "min_input_size")


def method_record(method: str | None) -> dict[str, Any]:
    """What an export records of the method that trained it (``scene_ssl.json``): its registry
    name, display name and citation, so that its card never depends on a guess. A name that
    is not registered is kept as it is, without a citation."""
    if method is None:
        return {"method": None, "method_name": None, "citation": None}
    spec = get_method(method) if method in method_names() else None
    return {"method": method, "method_name": spec.display_name if spec else method,
            "citation": spec.citation if spec else None}


def export_name(architecture: str, method: str, data: str | None) -> str:
    """``<arch>-<method>-<data>``, e.g. ``resnet50-mls-coco``: what an export is called."""
    return f"{architecture}-{method}-{dataset_name(data).replace('/', '-')}"


def evaluation_result(task: str, name: str, dataset: str, metrics: dict[str, float], *, split: str = "val",
                      source: str = "", **details: Any) -> dict[str, Any]:
    """One entry of an export's results: what was measured, on which data, and the numbers.

    ``task`` is the Hub task type (``image-classification``, ``object-detection``), ``name``
    says how (``multi-label linear probe (avgmax, 80 px)``), ``metrics`` maps metric names
    to values (percent), ``source`` says which run produced it. Means over several runs
    carry ``spread`` (metric -> standard deviation) and ``runs`` (n) in ``details``: the card
    shows ``mean ± std`` and n.
    """
    numbers = {k: round(float(v), 4) for k, v in metrics.items() if isinstance(v, (int, float))}
    if "spread" in details:
        details["spread"] = {k: round(float(v), 4) for k, v in details["spread"].items()}
    return {"task": task, "name": name, "dataset": dataset, "split": split, "metrics": numbers, "source": source, **details}


def _feature_map_size(model: nn.Module, size: int) -> tuple[int, int]:
    """The last feature map's (H, W) at the training input size (a ResNet at 40 px: 2 x 2).
    The probe input is made where the model is (a GPU after a GPU run; ``meta`` in the tests)."""
    was_training = model.training
    model.eval()
    weight = next(model.parameters())
    with torch.no_grad():
        x = torch.zeros(1, 3, size, size, device=weight.device, dtype=weight.dtype)
        out = model.forward_features(x)
    model.train(was_training)
    if out.ndim == 4:
        return tuple(out.shape[1:3]) if getattr(model, "output_fmt", "NCHW") == "NHWC" else tuple(out.shape[2:])
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)  # ViT tokens
    return tuple(grid) if grid is not None else (1, 1)


def save_pretrained(
    backbone: nn.Module,
    out_dir: str | os.PathLike,
    *,
    tag: str,
    method: str | None = None,
    name: str | None = None,
    results: list[dict[str, Any]] | None = None,
    train_config: dict[str, Any] | None = None,
    license: str = "apache-2.0",
    description: str | None = None,
    input_size: int | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``backbone`` (a timm model or :class:`~scene_ssl.models.TimmBackbone`) to ``out_dir``.

    Args:
        tag: pretrained tag, e.g. ``"mls_coco"``.
        method: the registry name of the method that trained the weights (``mls``, ``bam`` ...,
            see :func:`scene_ssl.models.method_names`): the card's method and citation. None:
            the card names no method (the tag is never read for it).
        name: the model's name in its card (default: :func:`export_name` of architecture, method, data).
        results: :func:`evaluation_result` entries (probes, detection), shown in the card.
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
    record = method_record(method)
    architecture = model.pretrained_cfg.get("architecture", type(model).__name__)
    dataset = dataset_name(train_config.get("data"))
    description = description or (
        f"{architecture} pretrained with {record['method_name'] or 'a self-supervised method'} (no labels) on "
        f"{dataset} by scene_ssl.")
    data_cfg = timm.data.resolve_model_data_config(model)
    ours = {k: copy.deepcopy(v) for k, v in model.pretrained_cfg.items() if k in _KEEP}
    ours.update(tag=tag, license=license, description=description, num_classes=model.num_classes,
                mean=tuple(data_cfg["mean"]), std=tuple(data_cfg["std"]), input_size=(3, size, size), crop_pct=1.0,
                pool_size=_feature_map_size(model, size))

    # a private copy: save_config_for_hf reads model.pretrained_cfg, and safetensors wants
    # contiguous weights (training may have made them channels-last)
    model = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)
    model.pretrained_cfg = ours
    meta = {"name": name or export_name(architecture, method or "ssl", train_config.get("data")), "tag": tag, **record,
            "repo_id": repo_id, "results": list(results or []), "train_config": train_config}
    weights = tensor_bytes(model.state_dict().values())
    with _written_whole(out, weights) as tmp:
        save_for_hf(model, str(tmp), safe_serialization=True,
                    data_config={"input_size": (3, size, size), "mean": ours["mean"], "std": ours["std"], "crop_pct": 1.0})
        (tmp / "scene_ssl.json").write_text(json.dumps(meta, indent=1, default=str))
    write_card(out)
    return out


@contextlib.contextmanager
def _written_whole(out: Path, needed: int) -> Iterator[Path]:
    """Write ``out`` as a temporary sibling, flushed to disk, then renamed into place: a full
    disk or a crash leaves the previous export (if any) as it was. The free space is checked first."""
    require_free_space(out.parent, needed, f"the export {out.name}", intact=f"the previous {out}" if out.exists() else "")
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        sync_folder(tmp)
    except Exception as error:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_full_error(error, out.parent, f"the export {out.name}", needed)
        if full is not None:
            raise full from None
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    sync_entries(out.parent)


def read_export(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``scene_ssl.json`` of an export folder."""
    path = Path(folder) / "scene_ssl.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a scene_ssl export (no scene_ssl.json)")
    return json.loads(path.read_text())


def add_results(folder: str | os.PathLike, results: list[dict[str, Any]]) -> Path:
    """Add :func:`evaluation_result` entries to an export and re-render its card. A result of
    the same task, name, dataset and split as an earlier one replaces it."""
    folder = Path(folder)
    meta = read_export(folder)
    key = lambda r: (r["task"], r["name"], r["dataset"], r.get("split"))  # noqa: E731
    new = {key(r) for r in results}
    meta["results"] = [r for r in meta.get("results", []) if key(r) not in new] + list(results)
    (folder / "scene_ssl.json").write_text(json.dumps(meta, indent=1, default=str))
    write_card(folder)
    return folder


def export_run(run, cfg, results: list[dict[str, Any]] | None = None) -> Path | None:
    """A pretraining recipe's last step: ``<output_dir>/export`` from a finished run, named
    ``cfg.export_tag`` or ``<arch>-<method>-<data>``, with ``results`` in its card.

    ``run`` is a :class:`~scene_ssl.train.PretrainResult`; nothing is written for a run
    that stopped early, with ``cfg.export`` off, or on processes other than the main one.
    """
    if not cfg.export or not run.finished or not is_main_process():
        return None
    method = run.method  # what trained, from the registry (MLS's λ = 0 is mocov2)
    backbone = run.model.encoder.model
    architecture = backbone.pretrained_cfg.get("architecture", cfg.backbone)
    name = cfg.export_tag or export_name(architecture, method, cfg.data)
    tag = cfg.export_tag or f"{method}_{dataset_name(cfg.data).replace('/', '_')}"
    train_config = dataclasses.asdict(cfg)
    folder = save_pretrained(backbone, Path(cfg.output_dir) / "export", tag=tag, method=method, name=name,
                             results=results, train_config=train_config)
    print(f"exported {name} to {folder} (timm.create_model('local-dir:{folder.resolve()}', pretrained=True))")
    return folder
