"""Detection transfer: fine-tune torchvision's Faster / Mask R-CNN (FPN) on a pretrained timm
backbone and report COCO AP (AP, AP50, AP75, APs, APm, APl; box and mask), next to the same
detector on a randomly initialised backbone: the scene-SSL papers' headline evaluation,
without Detectron2 or a weight conversion.

With no arguments it runs the quick configuration (configs/detection_scenes.yaml): the main
job's export (outputs/mls_scenes) vs random init on the embedded scenes, about 20 minutes on 2 CPU cores.

    accelerate launch recipes/transfer_detection.py
    accelerate launch recipes/transfer_detection.py --model outputs/bam_scenes
    # the MLS / MoCo protocol: Mask R-CNN R50-FPN 1x on COCO, SyncBN, 8 GPUs x 2 images
    accelerate launch --multi_gpu --num_processes 8 --mixed_precision bf16 recipes/transfer_detection.py \\
        --config recipes/configs/detection_coco_r50_1x.yaml --model outputs/mls_coco_r50
    accelerate launch recipes/transfer_detection.py --config ... --resume auto      # after a preemption

``--model`` takes a training output folder, an export folder, local-dir:..., hf-hub:org/name
or random:<timm name>; the backbone is built with timm ``features_only`` from exactly those
weights (ResNet, ConvNeXt, ViT ...). Results go to OUTPUT_DIR/metrics.json and, for a local
export, into its model card as an object-detection result.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from scene_ssl.config import parse_recipe_config, user_errors
from scene_ssl.detection import load_detection_set
from scene_ssl.detection.config import DetectionConfig
from scene_ssl.detection.report import write_report, write_seeds_report
from scene_ssl.detection.train import finetune_detector, make_detection_accelerator
from scene_ssl.loading import load_backbone
from scene_ssl.processes import is_main_process
from scene_ssl.seeds import run_seeds

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "detection_scenes.yaml"


def backbones(cfg: DetectionConfig) -> dict[str, str]:
    """name -> source: the pretrained backbone and, for comparison, random init of its architecture."""
    sources = {"pretrained": cfg.model}
    if cfg.compare_random and not cfg.model.startswith("random:"):
        arch = load_backbone(cfg.model).model.pretrained_cfg.get("architecture")
        sources["random init"] = f"random:{arch}"
    return sources


def run_backbones(cfg: DetectionConfig, train, val) -> dict | None:
    """Fine-tune and evaluate each backbone of :func:`backbones`; None when a signal stopped one."""
    rows = {}
    for name, source in backbones(cfg).items():
        start = time.perf_counter()
        run = finetune_detector(cfg, source, train, val, Path(cfg.output_dir) / name.replace(" ", "_"),
                                make_detection_accelerator(cfg))
        if not run.finished:
            return None
        rows[name] = {"source": source, "metrics": run.metrics, "minutes": (time.perf_counter() - start) / 60,
                      "images_per_s": run.images_per_s}
    return rows


def main(argv: list[str] | None = None) -> dict:
    with user_errors(DetectionConfig):  # a bad flag, spec or file: one line and exit status 2
        cfg = parse_recipe_config(DetectionConfig, argv, DEFAULT_CONFIG, description=__doc__)
        train = load_detection_set(cfg.data, cfg.train_split, bbox_format=cfg.bbox_format)
        if cfg.task == "segm" and not train.has_masks:
            raise ValueError(f"task segm needs masks and {cfg.data} has boxes only: use --task bbox")
        val = load_detection_set(cfg.data, cfg.val_split, bbox_format=cfg.bbox_format)
        if not cfg.seeds:
            rows = run_backbones(cfg, train, val)
            if rows is None:
                return {"stopped_by": "a signal"}
            if is_main_process():
                write_report(cfg, rows)
            return rows

        def one(seed: int, folder: Path) -> dict | None:
            rows = run_backbones(dataclasses.replace(cfg, seed=seed, seeds=None, output_dir=str(folder)), train, val)
            return None if rows is None else {name: {**row["metrics"], "minutes": row["minutes"],
                                                     "images_per_s": row["images_per_s"]} for name, row in rows.items()}

        summary = run_seeds(list(cfg.seeds), cfg.output_dir, one, is_main=is_main_process())
        if summary.get("stopped"):
            return {"stopped_by": "a signal"}
        if is_main_process():
            write_seeds_report(cfg, summary)
        return summary


if __name__ == "__main__":
    main()
