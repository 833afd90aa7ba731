"""The probe recipes' bodies: load a backbone, extract (and cache) features, fit, report.

Each run prints what it probes (model, data, split sizes, image size, pool) before the
slow part, shows progress bars for feature extraction and the head, writes
``metrics.json``, and adds its result to the model card when the model is a local export.
The heads and scores are :mod:`.core`'s; ``--seeds`` runs the linear probe once per seed
(:func:`scene_ssl.seeds.run_seeds`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable

import timm
import torch
from accelerate import Accelerator

from ..card import dataset_name
from ..data import class_names, load_dataset, worker_count
from ..data.schema import fingerprint_of
from ..data.workers import use_cpu_threads
from ..export import add_results, evaluation_result
from ..loading import export_folder, load_backbone
from ..metrics import METRIC_NAMES, multilabel_metrics
from ..models import TimmBackbone
from ..processes import check_launch, is_local_main_process, is_main_process
from ..seeds import run_seeds, seeds_table
from .config import KNNProbeConfig, LinearProbeConfig
from .core import Extract, HeadOptions, head_options, knn_probe, linear_probe, score
from .features import extract_features

__all__ = ["run_linear_probe", "run_knn_probe"]


def _mode(cfg, train) -> str:
    if cfg.mode not in ("auto", "multilabel", "singlelabel"):
        raise ValueError(f"mode must be auto, multilabel or singlelabel, got {cfg.mode!r}")
    if cfg.mode != "auto":
        return cfg.mode
    return "singlelabel" if max(len(l) for l in train["labels"]) == 1 else "multilabel"


def _resolved(cfg, backbone: TimmBackbone):
    """``cfg`` with the image size from the model's own pretrained_cfg when none was given,
    and the workers capped at the CPUs available."""
    size = cfg.image_size or timm.data.resolve_model_data_config(backbone.model)["input_size"][-1]
    return dataclasses.replace(cfg, image_size=int(size), num_workers=worker_count(cfg.num_workers))


def _everywhere(accelerator, present: bool) -> bool:
    """Whether ``present`` holds on every process (a cache file on a disk only some see)."""
    if accelerator.num_processes == 1:
        return present
    flag = torch.tensor(float(present), device=accelerator.device)
    return bool(accelerator.reduce(flag, "sum").item() == accelerator.num_processes)


def _cached(cfg, opts: HeadOptions, accelerator, cache_dir: Path) -> Extract:
    """Pooled features of a split on every process, cached on disk by (model, data, split, size, pool)."""
    def extract(backbone, ds, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        split = cfg.val_split if split == "val" else cfg.train_split
        weights = hashlib.sha1(b"".join(p.detach().cpu().numpy().tobytes()[:4096] for p in backbone.parameters())).hexdigest()[:12]
        path = cache_dir / f"{fingerprint_of(cfg.data, split, opts.image_size, opts.pool, weights, len(ds))}.pt"
        if _everywhere(accelerator, path.is_file()):
            cached = torch.load(path, weights_only=True)
            return cached["features"], cached["targets"]
        feats, targets = extract_features(backbone, ds, image_size=opts.image_size, pool=opts.pool,
                                          batch_size=opts.batch_size, num_workers=opts.num_workers,
                                          device=accelerator.device, accelerator=accelerator, desc=f"features ({split})")
        if is_main_process():
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save({"features": feats, "targets": targets}, tmp)
            tmp.replace(path)
        return feats, targets
    return extract


def _header(cfg, kind: str, train, val, print_fn: Callable, threads: int) -> None:
    print_fn(f"{kind} of {cfg.model} on {cfg.data}: {len(train)} {cfg.train_split} / {len(val)} {cfg.val_split} images, "
             f"{cfg.image_size} px, {cfg.pool} pool, {threads} CPU thread(s)")


def _report(cfg, mode: str, scores: torch.Tensor, targets: torch.Tensor, names: list[str], extra: dict,
            print_fn: Callable, threshold_kwargs: dict | None = None) -> dict:
    result = score(scores, targets, mode == "singlelabel", **(threshold_kwargs or {}))
    if mode == "singlelabel":
        print_fn(f"top-1 {result['top1']:.2f}  top-5 {result['top5']:.2f}  mean per class {result['mean_per_class']:.2f}")
    else:
        # with the logit threshold (the authors' parity mode) their top-3 also needs the threshold
        parity = ({**threshold_kwargs, "top_k_threshold": True} if getattr(cfg, "logit_threshold", None) is not None
                  else {})
        result["top3"] = {k: v for k, v in multilabel_metrics(scores, targets, top_k=min(3, scores.shape[1]), **parity).items()
                          if k != "per_class_AP"}
        result["per_class_AP"] = dict(zip(names, result["per_class_AP"]))
        print_fn("| " + " | ".join(METRIC_NAMES) + " |\n|" + "---:|" * len(METRIC_NAMES) + "\n| "
                 + " | ".join(f"{result[c]:.1f}" for c in METRIC_NAMES) + " |")
    result.update(extra)
    _write_metrics(Path(cfg.output_dir), result, print_fn)
    return result


def _write_metrics(out: Path, result: dict, print_fn: Callable) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    print_fn(f"wrote {out / 'metrics.json'}")


def _names(mode: str) -> tuple[str, ...]:
    return METRIC_NAMES if mode == "multilabel" else ("top1", "top5", "mean_per_class")


def _to_card(cfg, kind: str, mode: str, result: dict, print_fn: Callable, spread: dict | None = None,
             runs: int | None = None) -> None:
    """Add the result to the model card when ``cfg.model`` is a local scene_ssl export."""
    folder = export_folder(cfg.model)
    if folder is None:
        return
    task = f"{'multi' if mode == 'multilabel' else 'single'}-label {kind} ({cfg.pool}, {cfg.image_size} px)"
    names = _names(mode)
    extra = {"spread": {k: spread[k] for k in names}, "runs": runs} if spread else {}
    add_results(folder, [evaluation_result("image-classification", task, dataset_name(cfg.data),
                                           {k: result[k] for k in names}, split=cfg.val_split,
                                           source=f"probe_{kind.split()[0]}.py", **extra)])
    print_fn(f"added the result to the model card {folder / 'README.md'}")


def _load(cfg):
    train = load_dataset(cfg.data, cfg.train_split, drop_unlabeled=True)
    val = load_dataset(cfg.data, cfg.val_split, drop_unlabeled=True)
    names = class_names(train)
    if not names:
        raise ValueError(f"{cfg.data} has no labels: a probe needs a labeled dataset")
    return train, val, names


def run_linear_probe(cfg: LinearProbeConfig, accelerator: Accelerator | None = None) -> dict:
    """Fit and evaluate the linear probe; write ``metrics.json``; return the metrics. With
    ``cfg.seeds``: once per seed (a finished seed is not rerun), then mean ± std (n)."""
    accelerator = check_launch(accelerator or Accelerator())
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    train, val, names = _load(cfg)  # bad data spec / split fail here, before the model loads
    mode = _mode(cfg, train)
    if not cfg.seeds:
        return _linear_probe_once(cfg, accelerator, train, val, names, mode, threads, to_card=True)
    cfg = _resolved(cfg, load_backbone(cfg.model))  # the image size the card names

    def one(seed: int, folder: Path) -> dict:
        one_cfg = dataclasses.replace(cfg, seed=seed, output_dir=str(folder), seeds=None)
        return {k: v for k, v in _linear_probe_once(one_cfg, accelerator, train, val, names, mode, threads,
                                                    cache_dir=Path(cfg.output_dir) / "features").items()
                if k in _names(mode)}

    summary = run_seeds(list(cfg.seeds), cfg.output_dir, one, is_main=is_main_process(),
                        print_fn=accelerator.print)
    result = {**summary, "model": cfg.model, "data": cfg.data, "mode": mode}
    accelerator.print(seeds_table(summary["seeds"], list(_names(mode))))
    if is_main_process():
        _write_metrics(Path(cfg.output_dir), result, accelerator.print)
        _to_card(cfg, "linear probe", mode, summary["mean"], accelerator.print, summary["std"], len(cfg.seeds))
    accelerator.wait_for_everyone()
    return result


def _linear_probe_once(cfg, accelerator, train, val, names, mode, threads, to_card: bool = False,
                       cache_dir: Path | None = None) -> dict:
    """One linear probe; its features cached in ``cache_dir`` (default: the output folder's;
    seeds share one: the features do not depend on the seed)."""
    torch.manual_seed(cfg.seed)
    backbone = load_backbone(cfg.model).to(accelerator.device)
    cfg = _resolved(cfg, backbone)
    _header(cfg, "linear probe", train, val, accelerator.print, threads)
    opts = head_options(cfg)
    scores, y_val = linear_probe(backbone, train, val, opts, accelerator=accelerator, single_label=mode == "singlelabel",
                                 extract=_cached(cfg, opts, accelerator, cache_dir or Path(cfg.output_dir) / "features"),
                                 show=is_local_main_process())
    result = None
    if is_main_process():
        threshold = ({"threshold": cfg.logit_threshold, "apply_sigmoid": False} if cfg.logit_threshold is not None
                     else {"threshold": cfg.threshold})
        result = _report(cfg, mode, scores, y_val, names,
                         {"model": cfg.model, "data": cfg.data, "pool": cfg.pool, "mode": mode, "image_size": cfg.image_size},
                         accelerator.print, threshold)
        if to_card:
            _to_card(cfg, "linear probe", mode, result, accelerator.print)
    accelerator.wait_for_everyone()
    return result if result is not None else {}


def run_knn_probe(cfg: KNNProbeConfig, accelerator: Accelerator | None = None) -> dict:
    """k-NN probe; write ``metrics.json``; return the metrics."""
    accelerator = check_launch(accelerator or Accelerator())
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    train, val, names = _load(cfg)
    mode = _mode(cfg, train)
    backbone = load_backbone(cfg.model).to(accelerator.device)
    cfg = _resolved(cfg, backbone)
    _header(cfg, f"kNN probe (k={cfg.k})", train, val, accelerator.print, threads)
    opts = head_options(cfg)
    scores, y_val = knn_probe(backbone, train, val, opts, accelerator=accelerator,
                              extract=_cached(cfg, opts, accelerator, Path(cfg.output_dir) / "features"))
    result = None
    if is_main_process():
        # the scores are vote fractions in [0, 1]: a label is predicted by at least half the weight
        result = _report(cfg, mode, scores, y_val, names, {"model": cfg.model, "data": cfg.data, "k": cfg.k, "mode": mode,
                                                            "image_size": cfg.image_size},
                         accelerator.print, {"threshold": 0.5, "apply_sigmoid": False})
        _to_card(cfg, f"knn probe k={cfg.k}", mode, result, accelerator.print)
    accelerator.wait_for_everyone()
    return result
