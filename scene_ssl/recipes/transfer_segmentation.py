"""Semantic-segmentation transfer: fine-tune mmseg's FCN or PSPNet on a pretrained timm backbone
(dilated to output stride 8, or a ViT at stride 16) and report mIoU / mAcc / aAcc, next to
the same model on a randomly initialised backbone: the papers' Cityscapes (MLS Table 3) and
VOC (DenseCL) evaluation, without mmsegmentation or mmcv.

With no arguments it runs the quick configuration (configs/segmentation_scenes.yaml): the
main job's export (outputs/mls_scenes) vs random init on the embedded scenes' semantic
masks, a few minutes on 2 CPU cores for both.

    accelerate launch recipes/transfer_segmentation.py
    # the DenseCL / mmselfsup Cityscapes benchmark: FCN R50-D8 769x769 40k, SyncBN, 4 GPUs x 2 images
    accelerate launch --multi_gpu --num_processes 4 recipes/transfer_segmentation.py \\
        --config recipes/configs/segmentation_cityscapes_fcn_r50_d8_40k.yaml --model outputs/mls_coco_r50 \\
        --data cityscapes:/data/cityscapes
    accelerate launch recipes/transfer_segmentation.py --config ... --resume auto      # after a preemption

``--model`` takes a training output folder, an export folder, local-dir:..., hf-hub:org/name
or random:<timm name>. Results go to OUTPUT_DIR/metrics.json (per-class IoU and Acc in it)
and, for a local export, into its model card as an image-segmentation result.
"""
from __future__ import annotations


from scene_ssl.recipes import config_path
from scene_ssl.config import parse_recipe_config, user_errors
from scene_ssl.segmentation import SegmentationConfig, load_segmentation_set
from scene_ssl.segmentation.report import write_report
from scene_ssl.segmentation.train import finetune_segmenter, make_segmentation_accelerator
from scene_ssl.transfer import run_transfer

DEFAULT_CONFIG = config_path("segmentation_scenes.yaml")


def main(argv: list[str] | None = None) -> dict:
    with user_errors(SegmentationConfig):  # a bad flag, spec or file: one line and exit status 2
        cfg = parse_recipe_config(SegmentationConfig, argv, DEFAULT_CONFIG, description=__doc__)
        train = load_segmentation_set(cfg.data, cfg.train_split)
        val = load_segmentation_set(cfg.data, cfg.val_split)
        if train.class_names != val.class_names:
            raise ValueError(f"{cfg.data}: the {cfg.train_split} and {cfg.val_split} splits name different classes")
        return run_transfer(cfg, lambda c, source, out: finetune_segmenter(c, source, train, val, out,
                                                                           make_segmentation_accelerator(c)), write_report)


if __name__ == "__main__":
    main()
