"""Test driver: run the MLS recipe with one injected fault, in a process of its own.

    python tests/train/fault_driver.py FAULT OUT_DIR [recipe flags...]

FAULT is one of ``none`` (a plain run), ``raise_in_step`` (the third forward raises),
``sigkill_after_checkpoint`` (the process SIGKILLs itself right after writing the step-4
checkpoint), ``disk_full_check`` (the disk reports almost no free space once a checkpoint
exists), ``disk_full_export`` (the same once the last checkpoint exists: the export is refused), ``disk_full_write`` (the second checkpoint's write fails the way a full disk fails,
after half a file), ``kill_rank1`` (rank 1 of a 2-process run SIGKILLs itself at its third
forward), ``nan_rank1`` (rank 1's loss is NaN from its third forward on; rank 0's stays finite),
``slow`` (every forward sleeps 0.1 s first: time for a test to signal the run mid-way; the
numbers are those of ``none``). A finished run writes this rank's final weights to ``OUT_DIR/final_rank{R}.safetensors``.
"""
import errno
import os
import shutil
import signal
import sys
import time
from collections import namedtuple
from pathlib import Path

from accelerate import Accelerator
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes"))

import pretrain_mls  # noqa: E402

from scene_ssl import durable  # noqa: E402
from scene_ssl.models import MLS  # noqa: E402
from scene_ssl.train import loop  # noqa: E402


def _on_forward(n: int, action) -> None:
    forward = MLS.forward
    calls = [0]

    def counted(self, batch):
        calls[0] += 1
        if calls[0] == n:
            action()
        return forward(self, batch)

    MLS.forward = counted


def _raise():
    raise RuntimeError("injected fault in a training step")


def inject(fault: str, out: Path) -> None:
    if fault == "raise_in_step":
        _on_forward(3, _raise)
    elif fault == "kill_rank1":
        if os.environ.get("RANK") == "1":
            _on_forward(3, lambda: os.kill(os.getpid(), signal.SIGKILL))
    elif fault == "slow":
        forward = MLS.forward

        def slow(self, batch):
            time.sleep(0.1)
            return forward(self, batch)

        MLS.forward = slow
    elif fault == "nan_rank1":
        if os.environ.get("RANK") == "1":
            forward, calls = MLS.forward, [0]

            def poisoned(self, batch):
                out = forward(self, batch)
                calls[0] += 1
                if calls[0] >= 3:
                    out["loss"] = out["loss"] * float("nan")
                return out

            MLS.forward = poisoned
    elif fault == "sigkill_after_checkpoint":
        save = loop.save_checkpoint

        def save_then_die(accelerator, folder, step, *args, **kwargs):
            path = save(accelerator, folder, step, *args, **kwargs)
            if step == 4:
                os.kill(os.getpid(), signal.SIGKILL)
            return path

        loop.save_checkpoint = save_then_die
    elif fault in ("disk_full_check", "disk_full_export"):
        usage = shutil.disk_usage
        # the disk fills once a checkpoint exists (check), or once the last one does (export)
        marker = "step_*" if fault == "disk_full_check" else "step_00000006"

        def nearly_full(path):
            real = usage(path)
            full = any((out / "checkpoints").glob(marker))
            return namedtuple("usage", "total used free")(real.total, real.used, 1000 if full else real.free)

        durable.shutil.disk_usage = nearly_full
    elif fault == "disk_full_write":
        save_state = Accelerator.save_state
        calls = [0]

        def fill_up(self, output_dir=None, **kwargs):
            calls[0] += 1
            if calls[0] < 2:
                return save_state(self, output_dir, **kwargs)
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "model.safetensors").write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")

        Accelerator.save_state = fill_up
    elif fault != "none":
        raise SystemExit(f"unknown fault {fault!r}")


def main() -> None:
    fault, out, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    inject(fault, out)
    run = pretrain_mls.main(["--output-dir", str(out), *argv])
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.detach().contiguous().clone() for k, v in run.model.state_dict().items()},
              str(out / f"final_rank{rank}.safetensors"))


if __name__ == "__main__":
    main()
