"""Do the methods learn what their papers say? Every registered method (MoCo v2, MLS,
SimSiam, BAM + IA-CLoss, DenseCL ...) and a random-init backbone with the same budget (epochs
over the same data, the same backbone and view size), S seeds each, probed the same way: the
GAMP multi-label linear probe (mAP) and the kNN probe (mAP), plus MLS's final pseudo-label
precision next to its chance rate. Two reference rows say how far each method is from what
matters (see ``_references.py``): ``supervised`` (the ceiling: BCE on the labels with the
same backbone, views and epochs) and ``simsiam_matched`` (SimSiam with as many views per
image as BAM).

    python benchmarks/bench_learning.py                                   # CPU: the embedded scenes, 3 seeds
    python benchmarks/bench_learning.py --seeds 0 --epochs 2              # a smoke run
    python benchmarks/bench_learning.py --scale gpu --data coco:/data/coco --probe-data coco:/data/coco

Each method starts from its registered quick config (``recipes/configs/<method>_scenes.yaml``),
so the table measures what ``accelerate launch recipes/...`` trains; ``--scale gpu`` swaps in
a ResNet-18 at 96 px for longer. Prints a table (mean ± std over seeds), writes it as JSON
and draws it as a PNG. Each finished run is appended to ``<out>/runs.jsonl``; run the same
command again after a crash and it skips the runs that are there under the same budget.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from PIL import Image, ImageDraw, ImageFont

from _references import REFERENCES, SupervisedConfig
from scene_ssl.config import add_num_workers, add_output_dir, load_config, parse_tool_args
from scene_ssl.data import load_dataset, num_classes
from scene_ssl.data.sources import default_splits
from scene_ssl.models import TimmBackbone, get_method, method_names
from scene_ssl.probe import HeadOptions, knn_probe, linear_probe, score
from scene_ssl.seeds import mean_std
from scene_ssl.train import pretrain

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("random", *method_names(), *REFERENCES)
#: --scale gpu: a real (small) backbone at a real (small) size, longer
GPU_SCALE = {"backbone": "resnet18", "image_size": 96, "probe_image_size": 160, "num_workers": 8,
             "mixed_precision": "bf16", "hidden_dim": 2048, "proj_dim": 2048, "proj_hidden_dim": 2048, "pred_hidden_dim": 512}


def views_per_image(method: str) -> int:
    """Views per image and epoch of a registered method's quick config (BAM 8, the others 2)."""
    spec = get_method(method)
    return load_config(spec.config, ROOT / "recipes" / "configs" / spec.quick_config).build_views().num_views


def method_config(method: str, seed: int, args):
    """The method's quick config (``recipes/configs/<its quick YAML>``) at the benchmark's budget;
    a reference row's from the registered method it starts from."""
    base = REFERENCES.get(method, method)
    spec = get_method(base)
    cls = SupervisedConfig if method == "supervised" else spec.config
    values = yaml.safe_load((ROOT / "recipes" / "configs" / spec.quick_config).read_text())
    if args.scale == "gpu":
        values.update({k: v for k, v in GPU_SCALE.items() if k in {f.name for f in dataclasses.fields(cls)}})
    epochs = args.epochs
    if method == "simsiam_matched":  # as many views per image as BAM in the same epochs
        epochs = args.epochs * views_per_image("bam") // views_per_image("simsiam")
    if method == "supervised":
        values["num_classes"] = num_classes(load_dataset(args.data, "train"))
    values.update(seed=seed, data=args.data, epochs=epochs, export=False, probe_data=None,
                  monitor_every=0, output_dir=str(Path(args.output_dir) / "runs" / f"{method}_seed{seed}"), save_every=0)
    if args.max_steps:
        values["max_steps"] = args.max_steps * epochs // args.epochs
    return load_config(cls, None, values)


def probe(backbone, args, probe_size: int, seed: int) -> dict[str, float]:
    """GAMP linear probe and kNN probe (avg pool) on ``args.probe_data``'s own splits (train ->
    val; VOC's trainval -> test)."""
    train_split, val_split = default_splits(args.probe_data)
    train = load_dataset(args.probe_data, train_split, drop_unlabeled=True)
    val = load_dataset(args.probe_data, val_split, drop_unlabeled=True)
    opts = HeadOptions(image_size=probe_size, epochs=args.probe_epochs, num_workers=min(2, args.num_workers), seed=seed)
    linear = score(*linear_probe(backbone, train, val, opts), single_label=False)
    knn = score(*knn_probe(backbone, train, val, dataclasses.replace(opts, pool="avg")), single_label=False,
                threshold=0.5, apply_sigmoid=False)
    return {"linear_mAP": linear["mAP"], "linear_CF1": linear["CF1"], "knn_mAP": knn["mAP"]}


def fresh_pretrain(cfg, cpu: bool):
    """``pretrain(cfg)`` with an Accelerator of its own: one run after another in this process."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return pretrain(cfg, accelerator=Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu))


def run_one(method: str, seed: int, args) -> dict:
    start = time.perf_counter()
    if method == "random":
        torch.manual_seed(seed)
        cfg = method_config("mls", seed, args)
        row = probe(TimmBackbone(cfg.backbone), args, cfg.probe_image_size, seed)
        return {**row, "train_min": 0.0}
    cfg = method_config(method, seed, args)
    run = fresh_pretrain(cfg, cpu=not torch.cuda.is_available())
    train_min = (time.perf_counter() - start) / 60
    row = probe(run.model.encoder, args, cfg.probe_image_size, seed)
    for key in ("pl_precision", "pl_chance", "loss_nce", "loss_mls", "loss_sim", "loss_ia", "loss_dense", "loss_bce",
                "z_std"):
        if key in run.losses:
            row[key] = run.losses[key]
    views = cfg.build_views().num_views * cfg.epochs  # per image over the run (at the epoch budget)
    return {**row, "views_seen": views, "train_min": train_min}


def summarise(rows: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float]]]:
    return {method: {k: (m, s) for k, (m, s, _) in mean_std(runs).items()} for method, runs in rows.items()}


def table(summary: dict, seeds: int) -> str:
    cols = [("linear_mAP", "GAMP linear mAP"), ("knn_mAP", "kNN mAP"), ("pl_precision", "MLS top-k precision"),
            ("pl_chance", "chance"), ("views_seen", "views / image"), ("train_min", "train min / run")]
    lines = [f"| method ({seeds} seed{'s' * (seeds > 1)}) | " + " | ".join(c[1] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for method, stats in summary.items():
        cells = [f"{stats[k][0]:.1f} ± {stats[k][1]:.1f}" if k in stats and k.endswith("mAP")
                 else f"{stats[k][0]:.0f}" if k in stats and k == "views_seen"
                 else f"{stats[k][0]:.2f}" if k in stats else "" for k, _ in cols]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw(summary: dict, title: str, path: Path) -> None:
    """Bars of the linear and kNN mAP (mean, ± std whiskers) per method."""
    w, h, left, bottom, top = 760, 420, 60, 60, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=13) if hasattr(ImageFont, "FreeTypeFont") else ImageFont.load_default()
    d.text((left, 12), title, fill="black", font=font)
    values = [s[k][0] + s[k][1] for s in summary.values() for k in ("linear_mAP", "knn_mAP") if k in s]
    lo = min(s[k][0] - s[k][1] for s in summary.values() for k in ("linear_mAP", "knn_mAP") if k in s)
    lo, hi = max(0.0, lo - 5), max(values) + 3
    sy = lambda v: h - bottom - (v - lo) / (hi - lo) * (h - top - bottom)  # noqa: E731
    d.line([left, top, left, h - bottom, w - 20, h - bottom], fill="black")
    for i in range(6):
        v = lo + i * (hi - lo) / 5
        d.text((10, sy(v) - 7), f"{v:.0f}", fill="black", font=font)
    slot = (w - left - 40) / len(summary)
    for i, (method, stats) in enumerate(summary.items()):
        for j, (key, colour) in enumerate((("linear_mAP", "#1f77b4"), ("knn_mAP", "#ff7f0e"))):
            if key not in stats:
                continue
            mean, std = stats[key]
            x0 = left + 10 + i * slot + j * slot * 0.4
            d.rectangle([x0, sy(mean), x0 + slot * 0.35, h - bottom], fill=colour)
            xc = x0 + slot * 0.175
            d.line([xc, sy(mean - std), xc, sy(mean + std)], fill="black", width=2)
        d.text((left + 10 + i * slot, h - bottom + 8), method, fill="black", font=font)
    d.rectangle([w - 200, top, w - 186, top + 12], fill="#1f77b4")
    d.text((w - 180, top - 2), "GAMP linear mAP", fill="black", font=font)
    d.rectangle([w - 200, top + 20, w - 186, top + 32], fill="#ff7f0e")
    d.text((w - 180, top + 18), "kNN mAP", fill="black", font=font)
    img.save(path)


def budget_key(args) -> dict:
    """What must match for a finished run to count again: data, budget and scale."""
    return {k: getattr(args, k) for k in ("data", "probe_data", "epochs", "max_steps", "probe_epochs", "scale")}


def finished_runs(path: Path, args) -> dict[tuple[str, int], dict]:
    """Runs already in ``runs.jsonl`` under the same budget: a killed benchmark goes on where it stopped."""
    if not path.exists():
        return {}
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["method"], r["seed"]): r["row"] for r in runs if r["budget"] == budget_key(args)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="scenes", help="pretraining data spec")
    ap.add_argument("--probe-data", default=None, help="labeled data of the probes (default: --data)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[0, 1, 2],
                    help="seeds of every method, e.g. 0,1,2 (default: 0,1,2)")
    ap.add_argument("--epochs", type=int, default=10, help="the budget of every method, epochs over the same data")
    ap.add_argument("--max-steps", type=int, default=None, help="a budget in steps instead (smoke tests)")
    ap.add_argument("--probe-epochs", type=int, default=100)
    ap.add_argument("--scale", choices=("cpu", "gpu"), default="cpu")
    add_num_workers(ap, 1, old="--workers")
    add_output_dir(ap, "outputs/bench_learning", "folder of the runs, the table and the plot", old="--out")
    args = parse_tool_args(ap, argv)
    args.probe_data = args.probe_data or args.data
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    finished = finished_runs(out / "runs.jsonl", args)
    for method in args.methods.split(","):
        if method not in METHODS:
            raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        for seed in args.seeds:
            row = finished.get((method, seed))
            if row is None:
                row = run_one(method, seed, args)
                with open(out / "runs.jsonl", "a") as f:
                    f.write(json.dumps({"budget": budget_key(args), "method": method, "seed": seed, "row": row}) + "\n")
            rows.setdefault(method, []).append(row)
            print(f"{method} seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
    summary = summarise(rows)
    budget = f"{args.max_steps} steps" if args.max_steps else f"{args.epochs} epochs"
    text = table(summary, len(args.seeds))
    print(f"\nlearning benchmark: {args.data}, {budget} per method, {args.scale} scale\n{text}")
    (out / "bench_learning.json").write_text(json.dumps({"args": vars(args), "runs": rows}, indent=1))
    draw(summary, f"{args.data}, {budget}, {len(args.seeds)} seed(s): mean ± std", out / "bench_learning.png")
    print(f"wrote {out / 'bench_learning.json'} and {out / 'bench_learning.png'}")
    return summary


if __name__ == "__main__":
    main()
