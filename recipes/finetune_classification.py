"""Fine-tune a pretrained backbone (all its layers, a linear head on top) on a classification set.

The recipe lives in the package (``scene_ssl.recipes.finetune_classification``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.finetune_classification``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.finetune_classification import main

if __name__ == "__main__":
    main()
