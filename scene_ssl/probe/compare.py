"""The main job's closing report: probe the trained backbone and a random-init one side by side."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import load_dataset
from ..data.sources import default_splits
from ..card import dataset_name
from ..export import evaluation_result
from ..metrics import METRIC_NAMES
from ..models import TimmBackbone
from .core import head_options, linear_probe, score
from ..processes import is_main_process

__all__ = ["compare_with_random_init", "probe_after_training", "format_table"]


def format_table(rows: dict[str, dict]) -> str:
    lines = ["| backbone | " + " | ".join(METRIC_NAMES) + " |", "|---|" + "---:|" * len(METRIC_NAMES)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.1f}" for c in METRIC_NAMES) + " |")
    return "\n".join(lines)


def compare_with_random_init(encoder: nn.Module, cfg, *, accelerator, out_dir: Path) -> dict[str, dict]:
    """Linear-probe ``encoder`` and a freshly initialised copy of its architecture on
    ``cfg.probe_data`` (train -> val), print the table and write ``probe.json``.

    Every process of ``accelerator`` extracts a share of the features and fits the same
    heads on all of them; the main process prints and writes."""
    train_split, val_split = default_splits(cfg.probe_data)
    train = load_dataset(cfg.probe_data, train_split, drop_unlabeled=True)
    val = load_dataset(cfg.probe_data, val_split, drop_unlabeled=True)
    torch.manual_seed(cfg.seed)
    random_init = TimmBackbone(cfg.backbone).to(accelerator.device)
    accelerator.print(f"\nlinear probe ({cfg.probe_pool} pool, {cfg.probe_image_size} px, {cfg.probe_epochs} epochs) on "
                      f"{cfg.probe_data}: {len(train)} train / {len(val)} val images, trained vs random-init backbone")
    opts = head_options(cfg, "probe_", num_workers=cfg.probe_workers(), seed=cfg.seed)
    results = {}
    for name, backbone in (("pretrained", encoder), ("random init", random_init)):
        m = score(*linear_probe(backbone, train, val, opts, accelerator=accelerator), single_label=False)
        results[name] = {k: v for k, v in m.items() if k != "per_class_AP"}
    accelerator.print(format_table(results))
    if is_main_process():
        (Path(out_dir) / "probe.json").write_text(json.dumps(results, indent=1))
    return results


def probe_after_training(cfg, run) -> list[dict[str, Any]]:
    """The recipe's evaluation step: when ``cfg.probe_data`` is set and the run finished,
    :func:`compare_with_random_init` on every process of the run; returns the trained
    backbone's result as export entries (:func:`scene_ssl.export.evaluation_result`)."""
    if not cfg.probe_data or not run.finished:
        return []
    table = compare_with_random_init(run.model.encoder, cfg, accelerator=run.accelerator, out_dir=run.output_dir)
    baseline = ", ".join(f"{k} {table['random init'][k]:.1f}" for k in ("mAP", "CF1", "OF1"))
    return [evaluation_result(
        "image-classification", f"multi-label linear probe ({cfg.probe_pool}, {cfg.probe_image_size} px)",
        dataset_name(cfg.probe_data),
        {k: table["pretrained"][k] for k in METRIC_NAMES}, split=default_splits(cfg.probe_data)[1],
        source=f"main job (random init: {baseline})")]
