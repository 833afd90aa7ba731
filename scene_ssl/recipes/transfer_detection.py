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


from scene_ssl.recipes import config_path
from scene_ssl.config import parse_recipe_config, user_errors
from scene_ssl.detection import load_detection_set
from scene_ssl.detection.config import DetectionConfig
from scene_ssl.detection.report import write_report
from scene_ssl.detection.train import finetune_detector, make_detection_accelerator
from scene_ssl.transfer import run_transfer

DEFAULT_CONFIG = config_path("detection_scenes.yaml")


def main(argv: list[str] | None = None) -> dict:
    with user_errors(DetectionConfig):  # a bad flag, spec or file: one line and exit status 2
        cfg = parse_recipe_config(DetectionConfig, argv, DEFAULT_CONFIG, description=__doc__)
        train = load_detection_set(cfg.data, cfg.train_split, bbox_format=cfg.bbox_format)
        if cfg.task == "segm" and not train.has_masks:
            raise ValueError(f"task segm needs masks and {cfg.data} has boxes only: use --task bbox")
        val = load_detection_set(cfg.data, cfg.val_split, bbox_format=cfg.bbox_format)
        return run_transfer(cfg, lambda c, source, out: finetune_detector(c, source, train, val, out,
                                                                          make_detection_accelerator(c)), write_report)


if __name__ == "__main__":
    main()
