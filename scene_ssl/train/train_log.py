"""One logging helper for every training loop: ``train_log.jsonl`` always, and the trackers."""
from __future__ import annotations

import json
from pathlib import Path

from accelerate import Accelerator

from ..processes import is_main_process

__all__ = ["TrainLog", "run_name"]


def run_name(out_dir: str | Path) -> str:
    """A tracker run's name from its folder and the one above: ``seed_0-pretrained``,
    ``detection_scenes-random_init`` (one name per run of a seeds series; no ``/`` for W&B)."""
    out = Path(out_dir)
    return f"{out.parent.name}-{out.name}" if out.parent.name else out.name


class TrainLog:
    """Where a run's numbers go: a line of ``OUTPUT_DIR/train_log.jsonl`` (written by the main
    process, for tools without a tracker) and the accelerator's trackers (TensorBoard, W&B,
    MLflow ... as the run was started with; none is a no-op). ``key`` names the step count in
    the JSONL lines (``step`` for pretraining, ``iteration`` for the transfer loops)."""

    def __init__(self, accelerator: Accelerator, out_dir: str | Path, key: str = "step") -> None:
        self.accelerator, self.path, self.key = accelerator, Path(out_dir) / "train_log.jsonl", key

    def start(self, project: str, config: dict) -> None:
        """Start the trackers (the main process's; TensorBoard under ``logs/<project>``) with the
        run's config (its plain values)."""
        self.accelerator.init_trackers(project, config={k: v for k, v in config.items()
                                                        if isinstance(v, (int, float, str, bool))})

    def finish(self) -> None:
        """The curves are complete: close the trackers (the process group stays)."""
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers = []  # an accelerator that trains again (fine-tuning's runs) starts new ones

    def write(self, logs: dict[str, float], step: int) -> None:
        self.accelerator.log(logs, step=step)
        if is_main_process():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({self.key: step, **logs}) + "\n")
