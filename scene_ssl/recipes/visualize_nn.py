"""Pictures of what a pretrained backbone has learned.

1. Nearest neighbours (as in MLS, Fig. 4-6): random crops of query images, each followed by
   the k most similar crops (cosine, pooled features) from *other* images of the gallery;
   beside it the same for a random-init backbone of the same architecture, the baseline.
2. The loss curves of a training run, from its ``train_log.jsonl``.

    python recipes/visualize_nn.py              # the main job's backbone and curves (configs/visualize_scenes.yaml)
    python recipes/visualize_nn.py --model outputs/mls_coco_r50 --data coco:/data/coco --output-dir outputs/viz

Pictures go to OUTPUT_DIR/nearest_neighbours.png and OUTPUT_DIR/loss_curve.png.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import datasets
import timm
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from scene_ssl.data import decode_image, load_dataset
from scene_ssl.loading import load_backbone
from scene_ssl.config import default_of, option, parse_recipe_config, user_errors
from scene_ssl.data.sources import default_splits
from scene_ssl.models import MLSConfig
from scene_ssl.recipes import config_path
from scene_ssl.transforms import ViewNormalizer, ViewPipeline, render_views_pil


DEFAULT_CONFIG = config_path("visualize_scenes.yaml")

@dataclasses.dataclass
class VisualizeConfig:
    model: str = option(default_of(MLSConfig, "output_dir"), "training output folder | export folder | local-dir:... | hf-hub:... | random:<arch>")
    data: str = option("scenes", "images: scenes | coco:/path | hf:<repo or folder> | folder:/path")
    split: str | None = option(None, "split the queries and the gallery come from (default: the data's evaluation split: val, VOC's test)")
    gallery_images: int = option(300, "images whose crops form the gallery")
    crops_per_image: int = option(4, "random crops per gallery image")
    queries: int = option(6, "query crops, one per row")
    k: int = option(8, "neighbours shown per query")
    crop_size: int = option(64, "side of every crop, px")
    scale_min: float = option(0.2, "crops keep (scale-min, 1.0) of the image area")
    compare_random: bool = option(True, "draw the same queries with a random-init backbone of the same architecture beside")
    seed: int = option(0, "seed of the crops")
    log: str | None = option(None, "a train_log.jsonl: also draw its loss curves")
    output_dir: str = option("outputs/visualize", "where nearest_neighbours.png and loss_curve.png go")

    def check(self) -> None:
        self.split = self.split or default_splits(self.data)[1]


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def random_crops(images: list[Image.Image], per_image: int, size: int, scale_min: float, g: torch.Generator):
    """uint8 crops (N, S, S, 3) and the index of the image each came from."""
    pipe = ViewPipeline(size=size, scale=(scale_min, 1.0), jitter_p=0, grayscale_p=0, blur_p=0, flip_p=0)
    crops, owner = [], []
    for i, img in enumerate(images):
        regions = torch.tensor([[0.0, 0.0, *img.size]]).repeat(per_image, 1)
        crops.append(render_views_pil(img, pipe.sample(regions, g), [pipe] * per_image))
        owner += [i] * per_image
    return torch.cat(crops), torch.tensor(owner)


@torch.no_grad()
def embed(backbone, crops: torch.Tensor, batch: int = 128) -> torch.Tensor:
    cfg = timm.data.resolve_model_data_config(backbone.model)
    norm = ViewNormalizer(cfg["mean"], cfg["std"])
    backbone.eval()
    out = [backbone(norm(crops[i : i + batch].permute(0, 3, 1, 2))) for i in range(0, len(crops), batch)]
    return F.normalize(torch.cat(out).float(), dim=1)


def _panel(title: str, queries: torch.Tensor, gallery: torch.Tensor, top: torch.Tensor, sims: torch.Tensor,
           size: int) -> Image.Image:
    """One backbone's rows: the query (red frame) then its neighbours, most similar first."""
    pad, gap, head = 4, 10, 34
    n, k = top.shape
    panel = Image.new("RGB", (gap + (k + 1) * (size + pad) + pad, head + n * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(panel)
    draw.text((pad, 2), title, fill="black", font=_font(14))
    draw.text((pad, head - 15), "query", fill="#c00000", font=_font(11))
    draw.text((gap + pad + size + pad, head - 15), f"its {k} nearest crops of other images, cosine similarity in the corner",
              fill="black", font=_font(11))
    for r in range(n):
        y = head + r * (size + pad)
        panel.paste(Image.fromarray(queries[r].numpy()), (pad, y))
        draw.rectangle([pad - 2, y - 2, pad + size + 1, y + size + 1], outline="#c00000", width=2)
        for c, j in enumerate(top[r].tolist()):
            x = gap + pad + (c + 1) * (size + pad)
            panel.paste(Image.fromarray(gallery[j].numpy()), (x, y))
            draw.text((x + 1, y + size - 11), f"{float(sims[r, c]):.2f}", fill="white", font=_font(9))
    return panel


def nearest_neighbour_grid(cfg: VisualizeConfig) -> Image.Image:
    """Query crops and their nearest gallery crops (MLS Fig. 4-6), for the model and, with
    ``compare_random``, a random-init backbone of the same architecture beside it."""
    g = torch.Generator().manual_seed(cfg.seed)
    ds = load_dataset(cfg.data, cfg.split).cast_column("image", datasets.Image(decode=False))
    n = min(len(ds), cfg.gallery_images + cfg.queries)
    if n <= cfg.queries:
        raise ValueError(f"{cfg.data}:{cfg.split} has {len(ds)} images; need more than --queries {cfg.queries}")
    images = [decode_image(ds[i]["image"]) for i in range(n)]
    gallery, _ = random_crops(images[cfg.queries :], cfg.crops_per_image, cfg.crop_size, cfg.scale_min, g)
    queries, _ = random_crops(images[: cfg.queries], 1, cfg.crop_size, cfg.scale_min, g)
    k = min(cfg.k, len(gallery))
    backbone = load_backbone(cfg.model)
    arch = backbone.model.pretrained_cfg.get("architecture", backbone.name)
    backbones = [(f"{cfg.model} ({arch})", backbone)]
    if cfg.compare_random:
        torch.manual_seed(cfg.seed)
        backbones.append((f"random init ({arch}), the baseline", load_backbone(f"random:{arch}")))
    panels = []
    for title, net in backbones:
        sim = embed(net, queries) @ embed(net, gallery).t()  # (Q, G)
        sims, top = sim.topk(k, dim=1)
        panels.append(_panel(title, queries, gallery, top, sims, cfg.crop_size))
    head = 30
    width = sum(p.width for p in panels) + 12 * (len(panels) - 1)
    grid = Image.new("RGB", (width, head + max(p.height for p in panels)), "white")
    ImageDraw.Draw(grid).text((4, 6), f"nearest neighbours on {cfg.data} ({cfg.split}), pooled backbone features",
                              fill="black", font=_font(15))
    x = 0
    for p in panels:
        grid.paste(p, (x, head))
        x += p.width + 12
    return grid


def loss_curve(log_path: str | Path, size: tuple[int, int] = (760, 420)) -> Image.Image:
    """Every ``loss*`` series of a ``train_log.jsonl`` against the step, drawn with PIL: a
    title, labelled axes with 5 ticks each, and the legend in its own column on the right."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k in r if k.startswith("loss")})
    if not rows or not keys:
        raise ValueError(f"{log_path} has no logged losses")
    w, h = size
    left, legend, top, bottom = 70, 130, 40, 50
    right = w - legend
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 10), f"loss curves of {Path(log_path).parent.name or log_path}", fill="black", font=_font(15))
    steps = [r["step"] for r in rows]
    values = [r[k] for r in rows for k in keys if k in r and math.isfinite(r[k])]
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    sx = lambda v: left + (v - x0) / (x1 - x0) * (right - left)  # noqa: E731
    sy = lambda v: h - bottom - (v - lo) / (hi - lo) * (h - top - bottom)  # noqa: E731
    draw.line([left, top, left, h - bottom, right, h - bottom], fill="black")
    for i in range(5):
        frac = i / 4
        v, step = lo + frac * (hi - lo), x0 + frac * (x1 - x0)
        draw.line([left - 4, sy(v), left, sy(v)], fill="black")
        draw.text((6, sy(v) - 7), f"{v:.3g}", fill="black", font=_font(11))
        draw.line([sx(step), h - bottom, sx(step), h - bottom + 4], fill="black")
        draw.text((sx(step) - 10, h - bottom + 6), f"{int(step)}", fill="black", font=_font(11))
    draw.text(((left + right) // 2 - 40, h - 22), "optimiser step", fill="black", font=_font(12))
    draw.text((6, top - 22), "loss", fill="black", font=_font(12))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, key in enumerate(keys):
        colour = colours[i % len(colours)]
        pts = [(sx(r["step"]), sy(r[key])) for r in rows if key in r and math.isfinite(r[key])]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        y = top + 18 * i
        draw.line([right + 14, y + 7, right + 34, y + 7], fill=colour, width=3)
        draw.text((right + 40, y), key, fill="black", font=_font(12))
    return img


def main(argv: list[str] | None = None) -> dict:
    with user_errors(VisualizeConfig):
        return _draw(parse_recipe_config(VisualizeConfig, argv, DEFAULT_CONFIG, description=__doc__))


def _draw(cfg: VisualizeConfig) -> dict:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"nearest_neighbours": out / "nearest_neighbours.png"}
    nearest_neighbour_grid(cfg).save(written["nearest_neighbours"])
    if cfg.log:
        written["loss_curve"] = out / "loss_curve.png"
        loss_curve(cfg.log).save(written["loss_curve"])
    for what, path in written.items():
        print(f"wrote {what}: {path}")
    return written


if __name__ == "__main__":
    main()
