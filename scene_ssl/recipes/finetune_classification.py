"""Fine-tune a pretrained backbone (all its layers, a linear head on top) on a classification set.

MLS Table 5 evaluates classification this way (VOC07 mAP; CUB-200, Flowers-102, Stanford Cars,
FGVC Aircraft, Indoor-67, Oxford Pets, DTD top-1), and so does the field's reference protocol,
Ericsson et al., "How Well Do Self-Supervised Models Transfer?" (CVPR 2021). Each protocol is
a YAML (the defaults: Ericsson's); the pretrained backbone runs beside random init of its
architecture, and ``--seeds`` repeats the whole (2 runs in the protocols, as MLS).

    accelerate launch recipes/finetune_classification.py          # quick: the main job's export on the scenes
    accelerate launch recipes/finetune_classification.py --config recipes/configs/finetune_ericsson.yaml \\
        --model outputs/mls_coco_r50 --data torchvision:Flowers102:/data/flowers --metric mean_per_class --grid true
    accelerate launch --multi_gpu --num_processes 4 recipes/finetune_classification.py \\
        --config recipes/configs/finetune_mls.yaml --model hf-hub:org/name --data cub:/data/CUB_200_2011

``--data``: torchvision:<Flowers102|DTD|OxfordIIITPet|StanfordCars|FGVCAircraft>:/root, cub:/path,
indoor67:/path, voc:/VOCdevkit?years=2007 (multi-label, mAP), or any labeled spec.
"""
from __future__ import annotations


from scene_ssl.recipes import config_path
from scene_ssl.config import parse_recipe_config, user_errors
from scene_ssl.finetune import FinetuneConfig, run_finetune

DEFAULT_CONFIG = config_path("finetune_scenes.yaml")


def main(argv: list[str] | None = None) -> dict:
    with user_errors(FinetuneConfig):  # a bad flag, spec or file: one line and exit status 2
        return run_finetune(parse_recipe_config(FinetuneConfig, argv, DEFAULT_CONFIG, description=__doc__))


if __name__ == "__main__":
    main()
