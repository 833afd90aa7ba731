"""Test driver: run a recipe's main() and dump this rank's model state (weights + queues).

    accelerate launch ... tests/recipes/run_recipe.py pretrain_mls OUT_DIR [recipe flags...]
"""
import os
import sys
from pathlib import Path

from safetensors.torch import save_file



def main() -> None:
    recipe, out_dir, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))
    summary = __import__(recipe).main(argv)
    rank = int(os.environ.get("RANK", "0"))  # the process group is gone after end_training()
    state = {k: v.detach().contiguous().clone() for k, v in summary.model.state_dict().items()}
    save_file(state, str(out_dir / f"rank{rank}.safetensors"))


if __name__ == "__main__":
    main()
