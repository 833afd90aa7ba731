"""benchmarks/device_check.py --smoke: every section runs on the CPU and its report holds every
section's figures, so the one-call GPU check never rots between the rare GPU sessions."""
import json
import os
import subprocess
import sys
from pathlib import Path

from scene_ssl.models import method_names

ROOT = Path(__file__).resolve().parents[1]


def test_the_smoke_run_reports_every_section(tmp_path):
    env = {**os.environ, "SCENE_SSL_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--smoke", "--output-dir", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "device_report.json").read_text())
    sections = report["sections"]
    assert set(sections) == {"env", "parity", "step", "e2e", "learning", "detection"}
    assert all(s["status"] == "ok" for s in sections.values()), {k: s["status"] for k, s in sections.items()}
    assert sections["env"]["rows"][0]["torch"] and sections["env"]["rows"][0]["cpu_cores"] >= 1
    step = {r["method"]: r for r in sections["step"]["rows"]}
    assert set(step) == {"supervised", *method_names()} and step["supervised"]["vs_supervised_crops"] == 1.0
    assert all(r["images_s"] > 0 and r["vs_supervised_crops"] > 0 for r in step.values())
    e2e = {(r["method"], r["path"]) for r in sections["e2e"]["rows"]}
    assert {m for m, _ in e2e} == {"mls", "bam"} and len(e2e) == 6
    assert all(r["images_s"] > 0 and r["exported"] for r in sections["e2e"]["rows"])
    parity = {r["test"]: r["outcome"] for r in sections["parity"]["rows"]}  # without CUDA: listed, skipped
    assert any("renderer" in t for t in parity) and set(parity.values()) == {"skipped"}
    learning = {r["method"]: r for r in sections["learning"]["rows"]}
    assert set(learning) == {"random", "mocov2", "mls", "bam", "supervised"}
    assert all(0 <= r["linear_mAP"] <= 100 for r in learning.values())
    detection = sections["detection"]["rows"]
    assert detection[0]["what"] == "train" and detection[0]["iterations_s"] > 0
    assert sorted(r["eval_batch_size"] for r in detection[1:]) == [1, 8]
    markdown = (tmp_path / "device_report.md").read_text()
    assert all(f"## {name}: ok" in markdown for name in sections)
