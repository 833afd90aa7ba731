"""Every method hyperparameter's default is written once, in its config; the module and the README follow it."""
import inspect
import re
from pathlib import Path

import pytest
from torch import nn

from scene_ssl.config import default_of
from scene_ssl.models import get_method, method_names

#: constructor parameter -> config field, where the names differ
RENAMED = {"momentum": "ema_momentum", "momentum_schedule": "ema_schedule", "warmup_epochs": "mls_warmup_epochs"}
README = Path(__file__).resolve().parents[2] / "README.md"


def effective_defaults(cls: type) -> dict:
    """Each constructor parameter's default, a subclass's over its parents' (what ``**kwargs`` forwards)."""
    out = {}
    for klass in reversed(cls.__mro__):
        if issubclass(klass, nn.Module) and klass is not nn.Module and "__init__" in vars(klass):
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    out[name] = p.default
    return out


@pytest.mark.parametrize("name", method_names())
def test_a_modules_defaults_are_its_configs(name):
    spec = get_method(name)
    defaults = effective_defaults(spec.module)
    assert len(defaults) > 3
    for param, default in defaults.items():
        if param != "backbone_kwargs":
            assert default == default_of(spec.config, RENAMED.get(param, param)), (spec.module.__name__, param)


def _value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def test_the_readme_defaults_table_is_the_configs():
    table = README.read_text().split("| module | defaults (its config's fields) |")[1].split("\n\n")[0]
    configs = {get_method(n).module.__name__: get_method(n).config for n in method_names()}
    rows = 0
    for line in table.strip().splitlines()[1:]:
        module = re.match(r"\| `(\w+)` \|", line).group(1)
        pairs = re.findall(r"`(\w+)` ([-\w.]+)", line)
        assert pairs, line
        for field, text in pairs:
            want = default_of(configs[module], field)
            assert _value(text) == (float(want) if isinstance(want, (int, float)) and not isinstance(want, bool) else want), \
                (module, field, text, want)
        rows += 1
    assert rows == len(configs)
