"""Segmentation transfer the way it runs on a cluster: two processes, an epoch boundary crossed,
evaluation sharded over the processes and its areas summed."""
import json
import subprocess

from scene_ssl.export import save_pretrained
from scene_ssl.models import TimmBackbone

from ..launching import ROOT, accelerate_launch, job_env, new_mark, nothing_left_behind

# 48 training images at 2 per process: 12 iterations an epoch; 14 cross into the second
TINY = ["--schedule", "14", "--batch-size", "2", "--scale", "64,48", "--crop-size", "32,32", "--test-mode", "slide",
        "--test-scale", "64,48", "--test-crop", "32,32", "--test-stride", "24,24", "--head-channels", "16",
        "--aux-channels", "8", "--num-workers", "1", "--norm", "bn", "--log-every", "2", "--save-every", "7",
        "--eval-every", "7"]


def test_segmentation_fine_tunes_and_evaluates_on_two_processes(scenes, tmp_path):
    export = save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="t", train_config={"image_size": 32})
    out, mark = tmp_path / "seg", new_mark()
    proc = subprocess.run([*accelerate_launch(2), str(ROOT / "recipes" / "transfer_segmentation.py"), "--model", str(export),
                           "--data", f"coco:{scenes}", "--output-dir", str(out), "--compare-random", "false", *TINY],
                          env=job_env(tmp_path, mark), capture_output=True, text=True, timeout=400)
    nothing_left_behind(mark)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "14 iterations at 4 images" in proc.stdout
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert 0.0 < results["pretrained"]["metrics"]["sem_seg"]["aAcc"] <= 100.0
    logged = [json.loads(line) for line in (out / "pretrained" / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in logged] == [2, 4, 6, 7, 8, 10, 12, 14] and "mIoU" in logged[3]
