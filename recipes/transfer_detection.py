"""Detection transfer: fine-tune torchvision's Faster / Mask R-CNN (FPN) on a pretrained timm

The recipe lives in the package (``scene_ssl.recipes.transfer_detection``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.transfer_detection``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.transfer_detection import main

if __name__ == "__main__":
    main()
