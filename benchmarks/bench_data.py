"""Data-pipeline throughput per worker: scene_ssl's multi-view path vs the authors' way.

The baseline is written the way the MoCo / SimSiam / BAM loaders do it: PIL image,
torchvision v1 transforms per view (RandomResizedCrop, ColorJitter, RandomGrayscale, PIL
GaussianBlur, PIL Solarize, flip), ``ToTensor`` + ``Normalize`` to float32 per view, and
for BAM each block cropped out with ``Image.crop`` before its two pipelines. Both go
through a real ``DataLoader`` with the same number of workers, so decode, augmentation,
collate and the worker-to-main transfer are all counted. Runs are interleaved and the
median is reported (the machines are noisy).

    python benchmarks/bench_data.py                      # 1 worker, 224 px, COCO-sized JPEGs
    python benchmarks/bench_data.py --num-workers 2 --size 224 --batches 20
    python benchmarks/bench_data.py --device cuda        # + the GPU path: decode-only workers, on-device render

The "shards" row reads the same images from webdataset-style tar shards (``wds:``, written
by ``python -m scene_ssl.data.shards``) instead of one file each: the streaming path for
data beyond one disk, same views, same workers.

With ``--device`` it also times the ``--render process`` path: workers that only decode and
draw parameters (images/s per worker), and the batched device renderer (images/s and
views/s, synchronised), so that the two halves of the end-to-end number can be told apart.
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter, ImageOps
from torch.utils.data import DataLoader, Dataset

from scene_ssl.config import add_num_workers, parse_tool_args
from scene_ssl.data import ViewDataset, collate_decoded, collate_views, load_dataset, load_stream, make_scenes
from scene_ssl.data.shards import write_shards
from scene_ssl.data.stream import ShardedViewStream
from scene_ssl.transforms import BlockwiseTransform, DeviceViewRenderer, MoCoV2Transform, bam_view_transforms

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Blur:  # MoCo / SimSiam's PIL Gaussian blur
    def __call__(self, x):
        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


class _Solarize:
    def __call__(self, x):
        return ImageOps.solarize(x)


def baseline_pipeline(size: int, blur_p: float, solarize_p: float) -> T.Compose:
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.2, 1.0)),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([_Blur()], p=blur_p),
        T.RandomApply([_Solarize()], p=solarize_p),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])


class BaselineDataset(Dataset):
    def __init__(self, files: list[str], method: str, size: int, overlap: float = 0.2):
        self.files, self.method, self.c = files, method, overlap
        self.t1 = baseline_pipeline(size, 0.5, 0.5 if method == "bam" else 0.0)
        self.t2 = baseline_pipeline(size, 0.1 if method == "bam" else 0.5, 0.2 if method == "bam" else 0.0)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        x = Image.open(self.files[i]).convert("RGB")
        if self.method == "moco":
            return [self.t1(x), self.t1(x)]
        w, h = x.size
        cw, ch = self.c * w, self.c * h
        boxes = [(0, 0, w / 2 + cw, h / 2 + ch), (0, h / 2 - ch, w / 2 + cw, h),
                 (w / 2 - cw, 0, w, h / 2 + ch), (w / 2 - cw, h / 2 - ch, w, h)]
        blocks = [x.crop(b) for b in boxes]
        return [self.t1(b) for b in blocks] + [self.t2(b) for b in blocks]


def _throughput(loader: DataLoader, batches: int) -> float:
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not counted
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        batch = next(it)
        n += (batch["views"].shape[1] if isinstance(batch, dict) else batch[0].shape[0])
    return n / (time.perf_counter() - t0)


def _throughput_views(loader: DataLoader, batches: int) -> float:
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["images"].shape[0]
    return n / (time.perf_counter() - t0)


def _cpu_ms(dataset, n: int) -> float:
    """CPU milliseconds per image of a worker's work (decode and what the path does after),
    measured in this process, one thread."""
    t0 = time.process_time()
    for i in range(n):
        dataset[i % len(dataset)]
    return 1000 * (time.process_time() - t0) / n


def _stream_throughput(dataset: ShardedViewStream, workers: int, batches: int) -> float:
    """Images/s of a streamed dataset over ``batches`` batches (epochs chained), the first not counted."""
    loader = DataLoader(dataset, batch_size=dataset.batch_size, num_workers=workers, collate_fn=collate_views,
                        persistent_workers=workers > 0)
    n, t0, epoch = -1, None, 0
    while n < batches:
        dataset.set_epoch(epoch)
        for batch in loader:
            if t0 is None:
                t0, n = time.perf_counter(), 0
                continue
            n += 1
            if n == batches:
                break
        epoch += 1
    return batches * dataset.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_num_workers(ap, 1, old="--workers")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--data", default=None, help="folder of JPEGs (default: generated 640x480 scenes)")
    ap.add_argument("--device", default=None, help="also time the decode-only workers and the renderer on this device")
    ap.add_argument("--render-batch", type=int, default=128, help="images per renderer call with --device")
    args = parse_tool_args(ap)
    torch.set_num_threads(1)

    if args.data is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
        root = make_scenes(tmp / "jpegs", num_classes=10, num_train=args.images, num_val=1, image_size=(640, 480))
        folder = root / "train2017"
    else:
        folder = Path(args.data)
    dataset = load_dataset(f"folder:{folder}")
    files = dataset.cast_column("image", datasets.Image(decode=False))["image"]
    files = [f["path"] for f in files]

    t1, t2 = bam_view_transforms(args.size)
    ours = {
        "moco": ViewDataset(dataset, MoCoV2Transform(size=args.size)),
        "bam": ViewDataset(dataset, BlockwiseTransform(t1, t2, overlap=0.2)),
    }
    needed = args.batch_size * (args.batches + 1)
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for method in ("moco", "bam"):
            for impl in ("baseline", "scene_ssl"):
                if impl == "baseline":
                    ds = BaselineDataset(files, method, args.size)
                    kw = {}
                else:
                    ds, kw = ours[method], {"collate_fn": collate_views}
                sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=needed)
                loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers,
                                    persistent_workers=False, **kw)
                results.setdefault((method, impl), []).append(_throughput(loader, args.batches))

    shards = write_shards(f"folder:{folder}", "train", Path(tempfile.mkdtemp(prefix="bench_shards_")),
                          shard_size=max(1, len(files) // (4 * max(1, args.num_workers))), progress=False)
    stream = ShardedViewStream(load_stream(f"wds:{shards[0].parent}"), MoCoV2Transform(size=args.size),
                               batch_size=args.batch_size, num_workers=args.num_workers, shuffle_buffer=64)
    results[("moco", "shards")] = [_stream_throughput(stream, args.num_workers, args.batches) for _ in range(args.rounds)]

    cpu_ms = {}
    for method in ("moco", "bam"):
        transform = ours[method].transform
        paths = {"baseline (authors' loader)": BaselineDataset(files, method, args.size),
                 "scene_ssl, full decode": ViewDataset(dataset, transform, reduce_decode=False),
                 "scene_ssl": ours[method],
                 "decode only (--render process)": ViewDataset(dataset, transform, render="process"),
                 "read bytes only (--render device)": ViewDataset(dataset, transform, render="device")}
        for name, ds in paths.items():
            cpu_ms[(method, name)] = statistics.median(_cpu_ms(ds, args.batch_size) for _ in range(args.rounds))

    device_rows = {}
    if args.device:
        device = torch.device(args.device)
        for method in ("moco", "bam"):
            transform = ours[method].transform
            decoded = ViewDataset(dataset, transform, render="process")
            sampler = torch.utils.data.RandomSampler(decoded, replacement=True, num_samples=needed)
            loader = DataLoader(decoded, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers,
                                collate_fn=collate_decoded)
            decode_ips = statistics.median(_throughput_views(loader, args.batches) for _ in range(args.rounds)) / args.num_workers
            renderer = DeviceViewRenderer(transform.pipelines, MEAN, STD).to(device)
            batch = collate_decoded([decoded[i % len(decoded)] for i in range(args.render_batch)])
            batch = {k: (v.to(device) if torch.is_tensor(v) else {kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v)
                     for k, v in batch.items()}
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            for _ in range(3):
                renderer(batch)
            sync()
            t0 = time.perf_counter()
            reps = 10
            for _ in range(reps):
                renderer(batch)
            sync()
            render_ips = args.render_batch * reps / (time.perf_counter() - t0)
            device_rows[method] = (decode_ips, render_ips)

    views = {"moco": 2, "bam": 8}
    print(f"\ndata pipeline, {args.num_workers} worker(s), {args.size}px views, 640x480 JPEGs, median of {args.rounds} rounds")
    print("| method | pipeline | images/s/worker | views/s/worker | speed-up |")
    print("|---|---|---:|---:|---:|")
    for method in ("moco", "bam"):
        base = statistics.median(results[(method, "baseline")]) / args.num_workers
        for impl in ("baseline", "scene_ssl"):
            ips = statistics.median(results[(method, impl)]) / args.num_workers
            print(f"| {method} ({views[method]} views) | {impl} | {ips:.1f} | {ips * views[method]:.1f} | {ips / base:.2f}x |")
        if (method, "shards") in results:
            ips = statistics.median(results[(method, "shards")]) / args.num_workers
            print(f"| {method} ({views[method]} views) | scene_ssl from tar shards (wds:) | {ips:.1f} | "
                  f"{ips * views[method]:.1f} | {ips / base:.2f}x |")
    print("\nCPU time per image in the worker (one thread, median of the rounds)")
    print("| method | path | CPU ms / image |")
    print("|---|---|---:|")
    for (method, name), ms in cpu_ms.items():
        print(f"| {method} | {name} | {ms:.2f} |")
    if device_rows:
        print(f"\n--render process path: decode-only workers and the batched renderer on {args.device} "
              f"({args.render_batch} images per call)")
        print("| method | decode images/s/worker | render images/s | render views/s |")
        print("|---|---:|---:|---:|")
        for method, (dec, ren) in device_rows.items():
            print(f"| {method} ({views[method]} views) | {dec:.1f} | {ren:.1f} | {ren * views[method]:.1f} |")


if __name__ == "__main__":
    main()
