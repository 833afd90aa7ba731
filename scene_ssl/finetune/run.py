"""The fine-tuning recipe's body: the protocol (grid search or given lr / wd), the pretrained
backbone beside random init, each seed, the table, ``metrics.json`` and the card."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import datasets
import torch
from accelerate import Accelerator

from ..card import dataset_name
from ..data import load_dataset, worker_count
from ..data.workers import use_cpu_threads
from ..export import add_results, evaluation_result
from ..loading import export_folder
from ..processes import check_launch, is_main_process
from ..seeds import run_seeds, seeds_table
from ..transfer import compared_sources
from ..trackers import tracker_kwargs
from .config import FinetuneConfig
from .data import single_label
from .train import chosen_metric, finetune_once, metric_names

__all__ = ["run_finetune", "held_out_val", "grid_search"]


def held_out_val(train: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train without val, val): a seeded ``fraction`` of ``train`` held out (data with no val split)."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(fraction * len(train)))
    return train.select(sorted(order[n_val:])), train.select(sorted(order[:n_val]))


def grid_search(source: str, train: datasets.Dataset, val: datasets.Dataset, cfg: FinetuneConfig, *, single: bool,
                seed: int, accelerator: Accelerator) -> tuple[float, float, list[dict]]:
    """Fine-tune on ``train`` for every lr x wd (wd values divided by the lr, as Ericsson et al.),
    score on ``val``; return the best (lr, wd) by :func:`chosen_metric` (the first at a tie) and
    every row."""
    metric, rows = chosen_metric(cfg, single), []
    for lr in cfg.grid_lrs:
        for wd_value in cfg.grid_wds:
            wd = wd_value / lr
            run = finetune_once(source, train, val, cfg, single=single, lr=lr, weight_decay=wd, seed=seed,
                                accelerator=accelerator, desc=f"grid lr {lr:g} wd {wd:.3g}")
            rows.append({"lr": lr, "weight_decay": wd, **run.metrics})
            accelerator.print(f"  grid lr {lr:g} wd {wd:.3g}: val {metric} {run.metrics[metric]:.2f}")
    best = max(rows, key=lambda r: r[metric])  # max keeps the first of equals
    return best["lr"], best["weight_decay"], rows


def _one_backbone(source: str, train, val, test, cfg: FinetuneConfig, single: bool, seed: int, folder: Path,
                  accelerator: Accelerator) -> dict[str, float]:
    lr, wd = cfg.lr, cfg.weight_decay
    fit_on = train
    if cfg.grid:
        grid_train, grid_val = (train, val) if val is not None else held_out_val(train, cfg.val_fraction, seed)
        lr, wd, rows = grid_search(source, grid_train, grid_val, cfg, single=single, seed=seed, accelerator=accelerator)
        if is_main_process():
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "grid.json").write_text(json.dumps(rows, indent=1))
        fit_on = datasets.concatenate_datasets([train, val]) if val is not None else train  # train + val, then test
    start = time.perf_counter()
    run = finetune_once(source, fit_on, test, cfg, single=single, lr=lr, weight_decay=wd, seed=seed, accelerator=accelerator,
                        log_dir=folder)
    return {**run.metrics, "lr": lr, "weight_decay": wd, "minutes": (time.perf_counter() - start) / 60,
            "train_images": len(fit_on)}


def _table(results: dict[str, dict[str, float]], spread: dict[str, dict[str, float]] | None, names: tuple[str, ...]) -> str:
    lines = ["| backbone | " + " | ".join(names) + " | lr | wd | minutes |", "|---|" + "---:|" * (len(names) + 3)]
    for backbone, m in results.items():
        cell = lambda k: f"{m[k]:.2f}" + (f" ± {spread[backbone][k]:.2f}" if spread else "")  # noqa: E731
        lines.append(f"| {backbone} | " + " | ".join(cell(k) for k in names)
                     + f" | {m['lr']:g} | {m['weight_decay']:.3g} | {m['minutes']:.1f} |")
    return "\n".join(lines)


def run_finetune(cfg: FinetuneConfig, accelerator: Accelerator | None = None) -> dict:
    """Fine-tune ``cfg.model`` (and random init of its architecture) by ``cfg``'s protocol, once
    or per seed; print the table, write ``metrics.json``, add the result to the export's card."""
    accelerator = check_launch(accelerator or Accelerator(mixed_precision=cfg.mixed_precision,
                                                          **tracker_kwargs(cfg.report_to, cfg.output_dir)))
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    train = load_dataset(cfg.data, cfg.train_split, drop_unlabeled=True)
    test = load_dataset(cfg.data, cfg.test_split, drop_unlabeled=True)
    val = load_dataset(cfg.data, cfg.val_split, drop_unlabeled=True) if cfg.val_split else None
    single = single_label(train, cfg.mode == "largest") if cfg.mode in ("auto", "largest") else cfg.mode == "singlelabel"
    names = metric_names(single)
    sources = compared_sources(cfg.model, cfg.compare_random)
    length = f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.epochs} epochs"
    accelerator.print(f"fine-tuning {cfg.model} on {cfg.data} ({'single' if single else 'multi'}-label): {len(train)} "
                      f"{cfg.train_split} / {len(test)} {cfg.test_split} images, {cfg.image_size} px, {length} at "
                      f"{cfg.batch_size}, {'lr x wd grid' if cfg.grid else f'lr {cfg.lr:g}, wd {cfg.weight_decay:g}'}, "
                      f"{accelerator.num_processes} process(es), {threads} CPU thread(s)")

    def one(seed: int, folder: Path) -> dict:
        return {name: _one_backbone(source, train, val, test, cfg, single, seed, folder / name.replace(" ", "_"), accelerator)
                for name, source in sources.items()}

    out = Path(cfg.output_dir)
    if cfg.seeds:
        summary = run_seeds(list(cfg.seeds), out, one, is_main=is_main_process(), print_fn=accelerator.print)
        mean = {b: {k.split("/", 1)[1]: v for k, v in summary["mean"].items() if k.startswith(b + "/")} for b in sources}
        std = {b: {k.split("/", 1)[1]: v for k, v in summary["std"].items() if k.startswith(b + "/")} for b in sources}
        accelerator.print(seeds_table(summary["seeds"], [f"{b}/{chosen_metric(cfg, single)}" for b in sources]))
        result = {"results": mean, "std": std, "seeds": summary["seeds"], "runs": len(cfg.seeds)}
    else:
        mean, std = one(cfg.seed, out), None
        result = {"results": mean}
    accelerator.print(_table(mean, std, names))
    result.update(model=cfg.model, data=cfg.data, single_label=single, config=dataclasses.asdict(cfg))
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1, default=str))
        accelerator.print(f"wrote {out / 'metrics.json'}")
        _to_card(cfg, single, mean["pretrained"], std["pretrained"] if std else None, names, length, accelerator)
    accelerator.wait_for_everyone()
    return result


def _to_card(cfg: FinetuneConfig, single: bool, metrics: dict, spread: dict | None, names, length: str,
             accelerator: Accelerator) -> None:
    folder = export_folder(cfg.model)
    if folder is None:
        return
    extra = {"spread": {k: spread[k] for k in names}, "runs": len(cfg.seeds)} if spread else {}
    task = f"{'single' if single else 'multi'}-label fine-tuning ({cfg.image_size} px, {length})"
    add_results(folder, [evaluation_result("image-classification", task, dataset_name(cfg.data),
                                           {k: metrics[k] for k in names}, split=cfg.test_split,
                                           source="finetune_classification.py", **extra)])
    accelerator.print(f"added the result to the model card {folder / 'README.md'}")

