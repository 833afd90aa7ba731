"""Semantic-segmentation transfer: fine-tune mmseg's FCN or PSPNet on a pretrained timm backbone

The recipe lives in the package (``scene_ssl.recipes.transfer_segmentation``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.transfer_segmentation``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.transfer_segmentation import main

if __name__ == "__main__":
    main()
