"""The recipes run from an installed wheel, from a directory outside the checkout."""
import json
import os
import shutil
import subprocess
import sys

from .conftest import ROOT

SKIP = shutil.ignore_patterns(".git", ".venv", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")


def test_a_wheel_runs_a_recipe_with_its_yaml_outside_the_checkout(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)  # a copy: building leaves the checkout as it is
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("scene_ssl-*.whl"))
    site = tmp_path / "site"  # the wheel alone; its dependencies are this environment's
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "SCENE_SSL_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    where = subprocess.run([sys.executable, "-c", "import scene_ssl, scene_ssl.recipes as r; print(scene_ssl.__file__); "
                            "print(r.config_path('mls_scenes.yaml').is_file())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == "True"  # the wheel's copy, its YAMLs inside it
    helped = subprocess.run([sys.executable, "-m", "scene_ssl.recipes.pretrain_mls", "--help"], cwd=elsewhere, env=env,
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "from mls_scenes.yaml" in helped.stdout
    from scene_ssl.data import make_scenes

    scenes = f"coco:{make_scenes(tmp_path / 'scenes', num_classes=3, num_train=64, num_val=16, image_size=(48, 36))}"
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "-m",
                          "scene_ssl.recipes.pretrain_mls", "--epochs", "1", "--data", scenes, "--probe-data", scenes,
                          "--batch-size", "32", "--queue-size", "64", "--monitor-every", "0", "--probe-epochs", "2",
                          "--output-dir", "quick"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "no --config given: using " + str(site) in run.stdout  # the quick run's YAML, found in the wheel
    assert json.loads((elsewhere / "quick" / "export" / "config.json").read_text())["architecture"] == "test_resnet"
