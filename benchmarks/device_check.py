"""Every GPU number in one call, under 8 minutes on one CUDA device.

    python benchmarks/device_check.py --output-dir DIR            # on a GPU machine
    python benchmarks/device_check.py --smoke --output-dir DIR    # every section on the CPU, tiny, < 2 minutes

Writes ``DIR/device_report.md`` (tables) and ``DIR/device_report.json`` (every figure) and
prints each table as its section ends. Each section runs in a process of its own with its
own time budget, writing its rows as it goes: a section that fails or runs out of time is
reported with the rows it finished, and the others still run.

1. ``env``: GPU, driver, torch / torchvision / timm versions, CPU cores.
2. ``parity``: the CUDA parity tests (``tests/cuda``: device renderer and GPU decode vs the
   CPU, SyncBN, the export of a model on the GPU, every method through the recipe in bf16
   with its probe and export); one row per test with its outcome.
3. ``step``: training-step rates (bench_step.py) of supervised fwd+bwd and every registered
   method, eager and ``--compile`` (the trunks, as the loop compiles them); images/s, ratio
   to supervised, peak memory.
4. ``e2e``: the real loop from 640x480 JPEGs written to local disk, MLS and BAM, each through
   the three data paths (``--render cpu``, ``process``, ``device``) with CPU
   cores - 2 workers, then MLS with ``compile=True``; images/s, ratio to supervised, mean
   worker CPU and GPU utilisation, and whether the run's export (from the GPU) was written.
5. ``learning``: bench_learning.py ``--scale gpu`` for random init, MoCo v2, MLS, BAM and the
   supervised ceiling, one seed, on ``--learning-data`` (default: the embedded scenes).
6. ``detection``: Faster R-CNN R50-FPN at 512-640 px: training iterations/s, evaluation
   images/s at eval batch 1 and 8.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTIONS = ("env", "parity", "step", "e2e", "learning", "detection")
#: seconds each section may take on a GPU (8 minutes in all) and with --smoke
BUDGETS = {"env": 20, "parity": 150, "step": 120, "e2e": 100, "learning": 60, "detection": 30}
#: --smoke: caps, generous so that a slow CI machine does not cut a section (the whole runs in < 2 minutes)
SMOKE_BUDGETS = {"env": 60, "parity": 60, "step": 120, "e2e": 120, "learning": 180, "detection": 120}
SMOKE_HEADS = dict(dim=32, hidden_dim=64, queue_size=256, topk=5, proj_dim=64, proj_hidden_dim=64, pred_hidden_dim=16)


# -- running the sections ----------------------------------------------------------------------

def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_section(name: str, args, out: Path) -> dict:
    """Run one section in a child process under its budget; its rows, status and wall time."""
    rows_file = out / f"{name}.jsonl"
    rows_file.unlink(missing_ok=True)
    budget = (SMOKE_BUDGETS if args.smoke else BUDGETS)[name]
    cmd = [sys.executable, __file__, "--section", name, "--rows", str(rows_file), *sys.argv[1:]]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    except subprocess.TimeoutExpired:
        status = f"stopped at its {budget} s budget"
    return {"status": status, "seconds": round(time.perf_counter() - start, 1), "rows": _rows(rows_file)}


def _emit(rows_file: str, row: dict) -> None:
    with open(rows_file, "a") as f:
        f.write(json.dumps(row) + "\n")


# -- the sections (each in its own process) ----------------------------------------------------

def _device(args):
    import torch

    return torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")


def section_env(args, emit) -> None:
    import timm
    import torch
    import torchvision

    row = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
           "timm": timm.__version__, "cpu_cores": os.cpu_count(), "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        row["gpu"] = torch.cuda.get_device_name()
        row["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if shutil.which("nvidia-smi"):
            row["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True).stdout.strip()
    emit(row)


def section_parity(args, emit) -> None:
    """``pytest tests/cuda``: each test's outcome (all skipped without CUDA, as with --smoke)."""
    report = Path(args.rows).with_suffix(".junit.xml")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE.parent / "tests" / "cuda"),
                    f"--junitxml={report}"], cwd=HERE.parent, env=env, capture_output=True, text=True)
    import xml.etree.ElementTree as ET

    for case in ET.parse(report).getroot().iter("testcase"):
        problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        outcome = "passed" if problem is None else problem.tag
        message = "" if problem is None else (problem.get("message") or "").splitlines()[0][:160] if problem.get("message") else ""
        emit({"test": case.get("name"), "outcome": outcome, "seconds": round(float(case.get("time", 0)), 1),
              "message": message})


def section_step(args, emit) -> None:
    import bench_step
    from scene_ssl.models import method_names

    device = _device(args)
    smoke = args.smoke
    opts = argparse.Namespace(backbone="test_resnet" if smoke else "resnet50", image_size=32 if smoke else 224,
                              batch_size=8 if smoke else 128, precision="fp32" if smoke else "bf16",
                              channels_last=not smoke, warmup=1 if smoke else 5, steps=2 if smoke else 15, compile=False,
                              heads=SMOKE_HEADS if smoke else None)
    for compiled in (False, True):
        if compiled and smoke:
            continue  # compiling on the CPU takes longer than the whole smoke run
        opts.compile = compiled
        for method in ("supervised", *method_names()):
            row = bench_step.bench(method, opts, device)
            emit({"method": method, "compile": compiled, **{k: round(v, 3) for k, v in row.items()}})


class _Utilisation:
    """Mean CPU use of this process's children (the data workers, % of one core each) and mean
    GPU utilisation (nvidia-smi, %), sampled every 0.5 s while the block runs."""

    def __init__(self) -> None:
        self.cpu, self.gpu, self._stop = [], [], threading.Event()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.5):
            children = me.children(recursive=True)
            if children:
                self.cpu.append(sum(c.cpu_percent(interval=None) for c in children) / len(children))
            if shutil.which("nvidia-smi"):
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True).stdout.split()
                if out:
                    self.gpu.append(float(out[0]))

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def means(self) -> dict:
        mean = lambda v: round(sum(v[1:]) / len(v[1:]), 1) if len(v) > 1 else None  # noqa: E731 (the first sample is a warm-up)
        return {"worker_cpu_pct": mean(self.cpu), "gpu_util_pct": mean(self.gpu)}


def section_e2e(args, emit) -> None:
    import tempfile

    import bench_learning
    import bench_step

    from scene_ssl.data import make_scenes
    from scene_ssl.export import export_run
    from scene_ssl.models import get_method

    device = _device(args)
    smoke = args.smoke
    tmp = Path(tempfile.mkdtemp(prefix="device_check_e2e_"))
    size = (64, 48) if smoke else (640, 480)
    root = make_scenes(tmp / "jpegs", num_train=16 if smoke else 2000, num_val=1, image_size=size)
    backbone, image_size, batch = ("test_resnet", 16, 8) if smoke else ("resnet50", 224, 128)
    opts = argparse.Namespace(backbone=backbone, image_size=image_size, batch_size=batch, precision="fp32" if smoke else "bf16",
                              channels_last=not smoke, warmup=1 if smoke else 5, steps=2 if smoke else 10, compile=False)
    supervised = bench_step.bench("supervised", opts, device)["images_s"]
    workers = 0 if smoke else max(1, (os.cpu_count() or 3) - 2)
    steps = 2 if smoke else 60
    runs = [(method, render, False) for method in ("mls", "bam") for render in ("cpu", "process", "device")]
    if not smoke:  # compiling on a CPU takes longer than the whole smoke run
        runs.append(("mls", "process", True))
    for method, render, compiled in runs:
        spec = get_method(method)
        common = dict(data=f"coco:{root}", backbone=backbone, image_size=image_size, num_workers=workers,
                      max_steps=steps, log_every=max(1, steps // 3), save_every=0, probe_data=None,
                      render=render, output_dir=str(tmp / f"{method}_{render}_{compiled}"),
                      channels_last=not smoke, mixed_precision="no" if smoke else "bf16", compile=compiled)
        if smoke:  # small heads and queues: the paper's are minutes of CPU time
            fields = {f.name for f in dataclasses.fields(spec.config)}
            common.update({k: v for k, v in SMOKE_HEADS.items() if k in fields})
        cfg = bench_step.crop_matched_config(method, common, batch)
        views = cfg.build_views().num_views
        with _Utilisation() as use:
            run = bench_learning.fresh_pretrain(cfg, cpu=device.type == "cpu")
        ips = run.losses["images_per_s"]  # the last log window: workers warm, cuDNN tuned
        exported = export_run(run, cfg)  # from the model where it trained (the GPU)
        emit({"method": method, "path": {"cpu": "CPU views", "process": "views on the GPU (--render process)",
                                          "device": "views and decode on the GPU (--render device)"}[render]
              + (" + compile" if compiled else ""), "workers": workers, "images_s": round(ips, 1),
              "crops_s": round(ips * views, 1), "vs_supervised_crops": round(ips * views / supervised, 3), **use.means(),
              "exported": exported is not None and (exported / "model.safetensors").is_file()})


def section_learning(args, emit) -> None:
    import bench_learning

    methods = "random,mocov2,mls,bam,supervised"
    data, probe_data = args.learning_data, args.learning_probe_data or args.learning_data
    if args.smoke:  # a tiny scene set: the probes of the embedded one take minutes on a CPU
        import tempfile

        from scene_ssl.data import make_scenes

        data = probe_data = "coco:" + str(make_scenes(Path(tempfile.mkdtemp()) / "s", num_classes=4, num_train=256, num_val=16,
                                                       image_size=(48, 36)))
    argv = ["--methods", methods, "--seeds", "0", "--output-dir", str(Path(args.rows).parent / "learning"),
            "--data", data, "--probe-data", probe_data]
    argv += ["--max-steps", "2", "--probe-epochs", "2"] if args.smoke else ["--scale", "gpu", "--epochs", str(args.learning_epochs),
                                                                              "--num-workers", str(max(1, (os.cpu_count() or 3) - 2))]
    summary = bench_learning.main(argv)
    for method, stats in summary.items():
        emit({"method": method, **{k: round(v[0], 3) for k, v in stats.items()}})


def section_detection(args, emit) -> None:
    import torch

    from scene_ssl.detection.model import build_detector

    device = _device(args)
    smoke = args.smoke
    arch, sizes, max_size, iters = ("test_resnet", (64, 80), 96, 2) if smoke else ("resnet50", (512, 576, 640), 853, 20)
    torch.manual_seed(0)
    model = build_detector(f"random:{arch}", 20, task="bbox", norm="bn", train_sizes=sizes, max_size=max_size,
                           fpn_channels=32 if smoke else 256).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=not smoke)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    h, w = (sizes[-1], int(sizes[-1] * 4 / 3))

    def images(n):
        return [torch.rand(3, h, w, device=device) for _ in range(n)]

    def targets(n):
        boxes = torch.tensor([[10.0, 20.0, 0.4 * w, 0.5 * h], [0.5 * w, 0.3 * h, 0.9 * w, 0.8 * h]], device=device)
        return [{"boxes": boxes, "labels": torch.tensor([1, 5], device=device)} for _ in range(n)]

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model.train()
    batch = 2 if smoke else 8
    for i in range(iters + 2):
        if i == 2:
            sync()
            start = time.perf_counter()
        with autocast:
            loss = sum(model(images(batch), targets(batch)).values())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    emit({"what": "train", "batch": batch, "iterations_s": round(iters / (time.perf_counter() - start), 2),
          "images_s": round(iters * batch / (time.perf_counter() - start), 1)})
    model.eval()
    model.transform.min_size = (sizes[-1],)
    for eval_batch in (1, 8):
        n = 8 if smoke else 64
        with torch.no_grad(), autocast:
            model(images(eval_batch))
            sync()
            start = time.perf_counter()
            for _ in range(n // eval_batch):
                model(images(eval_batch))
            sync()
        emit({"what": "evaluate", "eval_batch_size": eval_batch, "images_s": round(n / (time.perf_counter() - start), 1)})


# -- the report --------------------------------------------------------------------------------

def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r.get(k) is None else str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def _with_ratios(name: str, rows: list[dict]) -> list[dict]:
    """Step rates get their ratio to the supervised row of the same compile setting."""
    if name != "step":
        return rows
    base = {r["compile"]: r["images_s"] for r in rows if r["method"] == "supervised"}
    return [{**r, "vs_supervised_crops": round(r["crops_s"] / base[r["compile"]], 3)} if r["compile"] in base else r
            for r in rows]


def main() -> dict:
    from scene_ssl.config import add_bool_flag, add_output_dir, parse_tool_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_dir(ap, None, "folder of device_report.md / .json", old="--out")
    add_bool_flag(ap, "--smoke", False, "every section on the CPU, tiny, a few steps")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--learning-data", default="scenes", help="labelled data spec of the learning section")
    ap.add_argument("--learning-probe-data", default=None, help="its probes' data (default: --learning-data)")
    ap.add_argument("--learning-epochs", type=int, default=20, help="the learning section's budget at --scale gpu")
    ap.add_argument("--section", default=None, help=argparse.SUPPRESS)  # internal: run one section
    ap.add_argument("--rows", default=None, help=argparse.SUPPRESS)
    args = parse_tool_args(ap)
    if args.section:
        globals()[f"section_{args.section}"](args, lambda row: _emit(args.rows, row))
        return {}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report, start = {"smoke": args.smoke, "sections": {}}, time.perf_counter()
    lines = [f"# device check{' (smoke: CPU, tiny models)' if args.smoke else ''}", ""]
    for name in args.sections.split(","):
        section = run_section(name, args, out)
        section["rows"] = _with_ratios(name, section["rows"])
        report["sections"][name] = section
        text = f"## {name}: {section['status']}, {section['seconds']} s\n\n{_table(section['rows'])}\n"
        print(text, flush=True)
        lines.append(text)
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    lines.append(f"total: {report['total_seconds']} s")
    (out / "device_report.md").write_text("\n".join(lines) + "\n")
    (out / "device_report.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / 'device_report.md'} and {out / 'device_report.json'} ({report['total_seconds']} s)")
    return report


if __name__ == "__main__":
    main()
