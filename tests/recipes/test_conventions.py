"""One CLI convention for every recipe and tool (the README's table), read from their --help."""
import importlib
import importlib.util
import re
import sys

import pytest

from .conftest import ROOT

RECIPES = ["pretrain", "pretrain_mls", "pretrain_bam", "pretrain_densecl", "probe_linear", "probe_knn", "transfer_detection",
           "transfer_segmentation", "finetune_classification", "visualize_nn"]
#: tools: (how to load it, main's argv or None for sys.argv)
TOOLS = {"scene_ssl.data.shards": "module", "hub/push.py": "file", "hub/convert_detectron2.py": "file",
         "benchmarks/bench_data.py": "file", "benchmarks/bench_step.py": "file", "benchmarks/bench_learning.py": "file",
         "benchmarks/device_check.py": "file"}
#: spellings the convention replaced
RETIRED = {"--out", "--output", "--workers", "--curve-output"}


def _help(main, argv0: str, monkeypatch, capsys, extra=()) -> dict[str, str]:
    """flag -> the rest of its --help line (metavar and text)."""
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setattr(sys, "argv", [argv0, *extra, "--help"])
    with pytest.raises(SystemExit) as exit_:
        main([*extra, "--help"]) if _takes_argv(main) else main()
    assert exit_.value.code == 0
    flags = {}
    for line in capsys.readouterr().out.splitlines():
        match = re.match(r"\s{2}(--[\w-]+)(.*)$", line)
        if match:
            flags[match.group(1)] = match.group(2)
    return flags


def _takes_argv(main) -> bool:
    return main.__code__.co_argcount > 0


def _check(flags: dict[str, str], where: str) -> None:
    assert not RETIRED & set(flags), f"{where}: {RETIRED & set(flags)}"
    for flag, rest in flags.items():
        if flag != "--help":
            # every option takes a value; a boolean shows it: --flag [BOOL] (true|false, bare means true)
            assert re.match(r" (\[?[A-Z]|\{)", rest), f"{where}: {flag} takes no value (a store_true switch?)"


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_speaks_the_convention(name, monkeypatch, capsys):
    module = importlib.import_module(f"scene_ssl.recipes.{name}")
    extra = ("--method", "mls") if name == "pretrain" else ()
    flags = _help(module.main, name, monkeypatch, capsys, extra)
    _check(flags, name)
    for flag in ("--config", "--output-dir", "--data", "--seed"):
        assert flag in flags, f"{name} has no {flag}"
    if name != "visualize_nn":  # it reads images itself, no loader
        assert "--num-workers" in flags, name
    # the script in recipes/ is the package's recipe
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "recipes" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main is module.main


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_speaks_the_convention(tool, monkeypatch, capsys):
    if TOOLS[tool] == "module":
        module = importlib.import_module(tool)
    else:
        spec = importlib.util.spec_from_file_location(tool.replace("/", "_")[:-3], ROOT / tool)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.syspath_prepend(str((ROOT / tool).parent))
        spec.loader.exec_module(module)
    _check(_help(module.main, tool, monkeypatch, capsys), tool)


def test_every_quick_yaml_evaluates_the_main_jobs_output():
    import yaml

    configs = ROOT / "scene_ssl" / "configs"
    main_job = yaml.safe_load((configs / "mls_scenes.yaml").read_text())["output_dir"]
    quick = [p for p in configs.glob("*_scenes.yaml") if "model" in yaml.safe_load(p.read_text())]
    assert len(quick) >= 6
    for path in quick:
        assert yaml.safe_load(path.read_text())["model"] == main_job, path.name


def test_a_bare_boolean_flag_means_true_even_before_a_positional():
    import argparse

    from scene_ssl.config import add_bool_flag, parse_tool_args

    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("repo_id")
    add_bool_flag(parser, "--private", False, "a private repo")
    add_bool_flag(parser, "--create-pr", False, "a pull request")
    assert vars(parse_tool_args(parser, ["--private", "out/run", "org/name"])) == {
        "source": "out/run", "repo_id": "org/name", "private": True, "create_pr": False}
    assert vars(parse_tool_args(parser, ["out/run", "org/name", "--private", "false", "--create-pr"])) == {
        "source": "out/run", "repo_id": "org/name", "private": False, "create_pr": True}
