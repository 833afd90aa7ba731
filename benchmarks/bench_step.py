"""Training-step throughput of each method vs plain supervised training of the same backbone.

Synthetic on-device tensors (no data loading), one optimiser step per iteration, timed with
device synchronisation after a warm-up. Every method sees B crops per encoder forward: the
supervised baseline B images, MoCo v2 / MLS / SimSiam B images x 2 views, BAM B/4 images
x 4 blocks x 2 views. images/s counts source images, crops/s every view the method encodes
(MoCo's key view included, although it runs without a backward). Ratios are to the supervised row of the same run.

    python benchmarks/bench_step.py --backbone resnet50 --batch-size 128 --precision bf16   # GPU
    python benchmarks/bench_step.py --backbone resnet10t --batch-size 32 --image-size 96 --channels-last false   # CPU

``--end-to-end`` adds the real training loop (``scene_ssl.train.pretrain``) fed from JPEG
files (generated 640x480 scenes unless ``--data``), with the augmentation in the data-loader
workers (``--render cpu``), on the device (``--render process``), and with the JPEGs decoded
on the device too (``--render device``: the workers only read bytes),
reporting the steady-state images/s of the loop's own log next to the same supervised row:

    python benchmarks/bench_step.py --end-to-end --num-workers 14 --methods mls,bam
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import time

import timm
import torch
import torch.nn.functional as F

from scene_ssl.config import add_bool_flag, add_num_workers, parse_tool_args
from scene_ssl.data.workers import use_cpu_threads
from scene_ssl.models import TimmBackbone, get_method, method_names

METHODS = ("supervised", *method_names())


def build(method: str, backbone: str, heads: dict | None = None):
    """The registered method with its paper defaults (its module's), or supervised training.
    ``heads`` overrides the constructor arguments a method has (small heads and queues on a CPU)."""
    if method == "supervised":
        return timm.create_model(backbone, num_classes=1000)
    module = get_method(method).module
    return module(backbone, **{k: v for k, v in (heads or {}).items() if k in accepted_kwargs(module)})


def accepted_kwargs(cls: type) -> set[str]:
    """The keywords a method's constructor takes, following ``**kwargs`` to its parents' (MLS -> MoCoV2)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is torch.nn.Module:
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


def make_step(method, model, opt, batch, image_size, device, autocast, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if method == "supervised":
        x = torch.randn(batch, 3, image_size, image_size, device=device).to(memory_format=fmt)
        y = torch.randint(0, 1000, (batch,), device=device)

        def step():
            with autocast():
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step, batch, batch
    images = batch * 2 // model.num_views  # B crops per encoder forward, as the supervised row: BAM B/4 images
    views = [torch.randn(images, 3, image_size, image_size, device=device).to(memory_format=fmt)
             for _ in range(model.num_views)]

    def step():
        with autocast():
            loss = model({"views": views})["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, images, images * model.num_views


def _compiled(model):
    """What ``--compile`` compiles in the loop: a method's trunks (its own Python stays eager);
    the supervised row's whole model."""
    trunks = [m for m in model.modules() if isinstance(m, TimmBackbone)]
    for trunk in trunks:
        trunk.compile_trunk()
    return model if trunks else torch.compile(model)


def bench(method, args, device) -> dict:
    torch.manual_seed(0)
    model = build(method, args.backbone, getattr(args, "heads", None)).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4,
                          fused=True if device.type == "cuda" else None)
    fwd = _compiled(model) if args.compile else model
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    step, images, crops = make_step(method, fwd, opt, args.batch_size, args.image_size, device, autocast, args.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    del model, opt, step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"images_s": images / dt, "crops_s": crops / dt, "step_ms": 1000 * dt, "peak_gib": peak}


def crop_matched_config(method: str, values: dict, crops: int):
    """The method's config with ``values`` and a batch giving ``crops`` crops per encoder forward,
    as the supervised row: a two-view method ``crops`` images, BAM's 8 views ``crops / 4``."""
    from scene_ssl.config import load_config

    spec = get_method(method)
    views = load_config(spec.config, None, values).build_views().num_views
    return load_config(spec.config, None, {**values, "batch_size": crops * 2 // views})


def end_to_end(args, methods, device) -> dict:
    """Steady-state images/s of the real loop from JPEGs, CPU vs device augmentation."""
    import tempfile
    from pathlib import Path

    from accelerate import Accelerator

    from scene_ssl.data import make_scenes
    from scene_ssl.train import pretrain

    tmp = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    data = args.data
    if data is None:
        root = make_scenes(tmp / "jpegs", num_train=args.images, num_val=1, image_size=(640, 480))
        # hard links: copies x more files to decode at no generation cost, so that the timed
        # window sits inside one epoch (an epoch boundary drains the prefetch pipeline)
        folder = tmp / "folder"
        folder.mkdir()
        for c in range(args.copies):
            for f in (root / "train2017").iterdir():
                (folder / f"{c}_{f.name}").hardlink_to(f)
        data = f"folder:{folder}"
    rows = {}
    for method in methods:
        if method == "supervised":
            continue
        for render in ("cpu", "process", "device"):
            common = dict(data=data, backbone=args.backbone, image_size=args.image_size, num_workers=args.num_workers,
                          max_steps=args.e2e_steps, log_every=args.e2e_steps // 2, save_every=0, export=False,
                          render=render, output_dir=str(tmp / f"{method}_{render}"),
                          channels_last=args.channels_last,
                          mixed_precision="no" if args.precision == "fp32" else args.precision, compile=args.compile)
            cfg = crop_matched_config(method, common, args.batch_size)
            accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=device.type == "cpu")
            summary = pretrain(cfg, accelerator=accelerator)
            views = summary.model.num_views
            ips = summary.losses["images_per_s"]  # the last log window: workers warm, cuDNN tuned
            label = {"cpu": "views in the workers", "process": "views on the device",
                     "device": "views and decode on the device"}[render]
            rows[(method, label)] = {"images_s": ips, "crops_s": ips * views}
            del summary
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def _gib(value: float) -> str:
    """Peak memory cell: CUDA's allocator statistics; the CPU has none to read (n/a)."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--batch-size", type=int, default=128, help="crops per encoder forward (all methods)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                    help="default: bf16 on CUDA, fp32 on the CPU (where bf16 autocast is slower)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    add_bool_flag(ap, "--channels-last", True, "channels-last memory format")
    add_bool_flag(ap, "--compile", False, "torch.compile the encoders")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_bool_flag(ap, "--end-to-end", False, "also time the real loop from JPEGs, each --render")
    add_num_workers(ap, 8, "data-loader processes for --end-to-end", old="--workers")
    ap.add_argument("--images", type=int, default=1024, help="generated JPEGs for --end-to-end")
    ap.add_argument("--e2e-steps", type=int, default=40)
    ap.add_argument("--copies", type=int, default=8, help="hard-linked copies of the generated JPEGs")
    ap.add_argument("--data", default=None, help="dataset spec for --end-to-end (default: generated 640x480 scenes)")
    ap.add_argument("--threads", type=int, default=None, help="CPU compute threads (default: every core)")
    args = parse_tool_args(ap)
    device = torch.device(args.device)
    threads = use_cpu_threads(args.threads, 0, device)  # synthetic tensors: no data workers
    if args.precision is None:
        args.precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    methods = [m for m in args.methods.split(",") if m]
    if "supervised" not in methods:
        methods.insert(0, "supervised")
    rows = {m: bench(m, args, device) for m in methods}
    base = rows["supervised"]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({threads} threads)"
    print(f"\n{args.backbone} @ {args.image_size}px, {args.batch_size} crops per forward, {args.precision}, "
          f"channels_last={args.channels_last}, compile={args.compile}, {name}")
    print("| method | images/s | crops/s | step ms | peak GiB | images/s vs supervised | crops/s vs supervised |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, r in rows.items():
        print(f"| {m} | {r['images_s']:.1f} | {r['crops_s']:.1f} | {r['step_ms']:.1f} | {_gib(r['peak_gib'])} | "
              f"{r['images_s'] / base['images_s']:.2f}x | {r['crops_s'] / base['crops_s']:.2f}x |")
    if args.end_to_end:
        e2e = end_to_end(args, methods, device)
        print(f"\nend to end from 640x480 JPEGs, {args.num_workers} workers, real loop (steady state), {name}")
        print("| method | augmentation | images/s | crops/s | images/s vs supervised | crops/s vs supervised |")
        print("|---|---|---:|---:|---:|---:|")
        for (m, aug), r in e2e.items():
            print(f"| {m} | {aug} | {r['images_s']:.1f} | {r['crops_s']:.1f} | {r['images_s'] / base['images_s']:.2f}x | "
                  f"{r['crops_s'] / base['crops_s']:.2f}x |")


if __name__ == "__main__":
    main()
