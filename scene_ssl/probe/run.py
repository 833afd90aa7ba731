"""The probe recipes' bodies: load a backbone, extract (and cache) features, fit, report.

Each run prints what it probes (model, data, split sizes, image size, pool) before the
slow part, shows progress bars for feature extraction and the head, writes
``metrics.json``, and adds its result to the model card when the model is a local export.
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
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from ..data import class_names, init_worker, load_dataset, worker_count
from ..data.workers import use_cpu_threads
from ..data.schema import fingerprint_of
from ..card import dataset_name
from ..export import add_results, evaluation_result
from ..metrics import METRIC_NAMES, multilabel_metrics, topk_accuracy
from ..loading import export_folder, load_backbone
from ..models import TimmBackbone
from ..processes import check_launch
from .config import KNNProbeConfig, LinearProbeConfig
from ..data.views import warn_skipped
from .features import BatchSlices, ProbeImages, batch_rows, collate_probe, extract_features, gather_indexed, pooled_features_fn
from .knn import knn_scores
from .linear import fit_linear_head, new_linear_head, probe_lr, train_linear_head

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


def _features(cfg, backbone, ds, split, accelerator, cache_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of a split, on every process, cached on disk by (model, data, split, size, pool)."""
    weights = hashlib.sha1(b"".join(p.detach().cpu().numpy().tobytes()[:4096] for p in backbone.parameters())).hexdigest()[:12]
    path = cache_dir / f"{fingerprint_of(cfg.data, split, cfg.image_size, cfg.pool, weights, len(ds))}.pt"
    if _everywhere(accelerator, path.is_file()):
        cached = torch.load(path, weights_only=True)
        return cached["features"], cached["targets"]
    feats, targets = extract_features(backbone, ds, image_size=cfg.image_size, pool=cfg.pool, batch_size=cfg.batch_size,
                                      num_workers=cfg.num_workers, device=accelerator.device, accelerator=accelerator,
                                      desc=f"features ({split})")
    if accelerator.is_main_process:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"features": feats, "targets": targets}, tmp)
        tmp.replace(path)
    return feats, targets


def _online_head(cfg, backbone, train_ds, accelerator, single_label: bool) -> torch.nn.Linear:
    """The authors' protocol without caching: RRC + flip through the frozen backbone each epoch.

    Every process decodes and embeds its slice of each batch, the batch is gathered back on
    all of them, and each steps the same head on it: the work is shared, the heads stay
    identical, and no process waits on another's long computation."""
    backbone.eval()
    device = accelerator.device
    features = pooled_features_fn(backbone, cfg.pool, device)
    images = ProbeImages(train_ds, cfg.image_size, train=True, seed=cfg.seed)
    batches = BatchSampler(RandomSampler(images, generator=torch.Generator().manual_seed(cfg.seed)), cfg.batch_size,
                           drop_last=True)
    world = accelerator.num_processes
    loader = DataLoader(images, batch_sampler=BatchSlices(batches, accelerator.process_index, world),
                        num_workers=cfg.num_workers, collate_fn=collate_probe, worker_init_fn=init_worker)

    skipped: set[str] = set()

    def epoch_batches(epoch: int):
        images.epoch = epoch
        for batch in loader:
            warn_skipped(batch["skipped"], skipped)
            with torch.no_grad():  # frozen backbone, BN in eval mode
                rows = batch_rows(batch, features, backbone.num_features, images.num_classes, device)
                _, f, t = gather_indexed(accelerator, -(-cfg.batch_size // world), *rows)
            yield f, t

    head = new_linear_head(backbone.num_features, len(train_ds[0]["multi_hot"])).to(device)
    train_linear_head(head, epoch_batches, len(loader), epochs=cfg.epochs, lr=probe_lr(cfg.batch_size, cfg.lr),
                      weight_decay=cfg.weight_decay, single_label=single_label,
                      desc="linear head (online)" if accelerator.is_local_main_process else None)
    return head.cpu()


def _header(cfg, kind: str, train, val, print_fn: Callable, threads: int) -> None:
    print_fn(f"{kind} of {cfg.model} on {cfg.data}: {len(train)} {cfg.train_split} / {len(val)} {cfg.val_split} images, "
             f"{cfg.image_size} px, {cfg.pool} pool, {threads} CPU thread(s)")


def _report(cfg, mode: str, scores: torch.Tensor, targets: torch.Tensor, names: list[str], extra: dict,
            print_fn: Callable, threshold_kwargs: dict | None = None) -> dict:
    if mode == "singlelabel":
        labels = targets.argmax(1)
        result = {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, min(5, scores.shape[1]))}
        print_fn(f"top-1 {result['top1']:.2f}  top-5 {result['top5']:.2f}")
    else:
        result = multilabel_metrics(scores, targets, **(threshold_kwargs or {}))
        # with the logit threshold (the authors' parity mode) their top-3 also needs the threshold
        parity = ({**threshold_kwargs, "top_k_threshold": True} if getattr(cfg, "logit_threshold", None) is not None
                  else {})
        result["top3"] = {k: v for k, v in multilabel_metrics(scores, targets, top_k=min(3, scores.shape[1]), **parity).items()
                          if k != "per_class_AP"}
        result["per_class_AP"] = dict(zip(names, result["per_class_AP"]))
        print_fn("| " + " | ".join(METRIC_NAMES) + " |\n|" + "---:|" * len(METRIC_NAMES) + "\n| "
                 + " | ".join(f"{result[c]:.1f}" for c in METRIC_NAMES) + " |")
    result.update(extra)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    print_fn(f"wrote {out / 'metrics.json'}")
    return result


def _to_card(cfg, kind: str, mode: str, result: dict, print_fn: Callable) -> None:
    """Add the result to the model card when ``cfg.model`` is a local scene_ssl export."""
    folder = export_folder(cfg.model)
    if folder is None:
        return
    names = METRIC_NAMES if mode == "multilabel" else ("top1", "top5")
    task = f"{'multi' if mode == 'multilabel' else 'single'}-label {kind} ({cfg.pool}, {cfg.image_size} px)"
    data = dataset_name(cfg.data)
    add_results(folder, [evaluation_result("image-classification", task, data, {k: result[k] for k in names},
                                           split=cfg.val_split, source=f"probe_{kind.split()[0]}.py")])
    print_fn(f"added the result to the model card {folder / 'README.md'}")


def _load(cfg):
    train = load_dataset(cfg.data, cfg.train_split, drop_unlabeled=True)
    val = load_dataset(cfg.data, cfg.val_split, drop_unlabeled=True)
    names = class_names(train)
    if not names:
        raise ValueError(f"{cfg.data} has no labels: a probe needs a labeled dataset")
    return train, val, names


def run_linear_probe(cfg: LinearProbeConfig, accelerator: Accelerator | None = None) -> dict:
    """Fit and evaluate the linear probe; write ``metrics.json``; return the metrics."""
    accelerator = check_launch(accelerator or Accelerator())
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    train, val, names = _load(cfg)  # bad data spec / split fail here, before the model loads
    mode = _mode(cfg, train)
    torch.manual_seed(cfg.seed)
    backbone = load_backbone(cfg.model).to(accelerator.device)
    cfg = _resolved(cfg, backbone)
    _header(cfg, "linear probe", train, val, accelerator.print, threads)
    cache = Path(cfg.output_dir) / "features"
    f_val, y_val = _features(cfg, backbone, val, cfg.val_split, accelerator, cache)
    if cfg.cache_features:
        f_train, y_train = _features(cfg, backbone, train, cfg.train_split, accelerator, cache)
    # every process fits the same head on the same features (no process idles in a collective
    # while another computes); the main one reports
    if cfg.cache_features:
        head = fit_linear_head(f_train, y_train, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                               weight_decay=cfg.weight_decay, single_label=mode == "singlelabel", seed=cfg.seed,
                               desc="linear head" if accelerator.is_local_main_process else None)
    else:
        head = _online_head(cfg, backbone, train, accelerator, mode == "singlelabel")
    result = None
    if accelerator.is_main_process:
        with torch.no_grad():
            scores = head(f_val)
        threshold = ({"threshold": cfg.logit_threshold, "apply_sigmoid": False} if cfg.logit_threshold is not None
                     else {"threshold": cfg.threshold})
        result = _report(cfg, mode, scores, y_val, names,
                         {"model": cfg.model, "data": cfg.data, "pool": cfg.pool, "mode": mode, "image_size": cfg.image_size},
                         accelerator.print, threshold)
        _to_card(cfg, "linear probe", mode, result, accelerator.print)
    accelerator.wait_for_everyone()
    return result


def run_knn_probe(cfg: KNNProbeConfig, accelerator: Accelerator | None = None) -> dict:
    """k-NN probe; write ``metrics.json``; return the metrics."""
    accelerator = check_launch(accelerator or Accelerator())
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    train, val, names = _load(cfg)
    mode = _mode(cfg, train)
    backbone = load_backbone(cfg.model).to(accelerator.device)
    cfg = _resolved(cfg, backbone)
    _header(cfg, f"kNN probe (k={cfg.k})", train, val, accelerator.print, threads)
    cache = Path(cfg.output_dir) / "features"
    f_train, y_train = _features(cfg, backbone, train, cfg.train_split, accelerator, cache)
    f_val, y_val = _features(cfg, backbone, val, cfg.val_split, accelerator, cache)
    result = None
    if accelerator.is_main_process:  # seconds: the others wait
        scores = knn_scores(f_train, y_train, f_val, k=cfg.k, temperature=cfg.temperature)
        # the scores are vote fractions in [0, 1]: a label is predicted by at least half the weight
        result = _report(cfg, mode, scores, y_val, names, {"model": cfg.model, "data": cfg.data, "k": cfg.k, "mode": mode,
                                                            "image_size": cfg.image_size},
                         accelerator.print, {"threshold": 0.5, "apply_sigmoid": False})
        _to_card(cfg, f"knn probe k={cfg.k}", mode, result, accelerator.print)
    accelerator.wait_for_everyone()
    return result
