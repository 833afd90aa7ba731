"""Detection transfer the way it runs on a cluster: two processes, an epoch boundary crossed,
evaluation sharded over the processes and gathered."""
import json
import subprocess

from scene_ssl.export import save_pretrained
from scene_ssl.models import TimmBackbone

from ..launching import ROOT, accelerate_launch, job_env, new_mark, nothing_left_behind

# 48 training images at 2 per process: 12 iterations an epoch; 14 cross into the second
TINY = ["--schedule", "14", "--batch-size", "2", "--train-sizes", "56,64", "--test-size", "64", "--max-size", "96",
        "--fpn-channels", "16", "--rois-per-image", "16", "--proposals-train", "50", "--proposals-test", "50",
        "--num-workers", "1", "--norm", "bn", "--warmup-iters", "2", "--log-every", "2", "--save-every", "7",
        "--task", "bbox"]


def test_detection_fine_tunes_and_evaluates_on_two_processes(scenes, tmp_path):
    export = save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="t", train_config={"image_size": 32})
    out, mark = tmp_path / "det", new_mark()
    proc = subprocess.run([*accelerate_launch(2), str(ROOT / "recipes" / "transfer_detection.py"), "--model", str(export),
                           "--data", f"coco:{scenes}", "--output-dir", str(out), *TINY], env=job_env(tmp_path, mark),
                          capture_output=True, text=True, timeout=400)
    nothing_left_behind(mark)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "14 iterations at 4 images" in proc.stdout
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert set(results) == {"pretrained", "random init"}
    for row in results.values():
        assert 0.0 <= row["metrics"]["bbox"]["AP"] <= 100.0
    logged = [json.loads(line)["iteration"] for line in (out / "pretrained" / "train_log.jsonl").read_text().splitlines()]
    assert logged == [2, 4, 6, 8, 10, 12, 14]
