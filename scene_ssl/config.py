"""Typed recipe configs: a dataclass is the schema, YAML overrides it, CLI flags override that.

Every field is declared with :func:`option`, which holds its default and its one-line help:
the same text documents the dataclass and fills ``--help``. ``parse_config(MLSConfig, argv)``
reads ``--config file.yaml`` (or the recipe's default YAML) first, so that ``--help`` shows
the defaults that will really apply, then the ``--field-name`` flags. Unknown keys are an
error naming the key and the file; ``save_config`` writes the resolved config next to the
outputs. :func:`user_errors` turns the errors a user caused into one line and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys
import traceback
import types
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import yaml

from .durable import InsufficientDiskSpace
from .nonfinite import NonFiniteLossError
from .processes import is_main_process

__all__ = ["option", "load_config", "parse_config", "parse_recipe_config", "save_config", "config_to_dict",
           "user_errors", "flag_name", "default_of", "add_bool_flag", "add_output_dir", "add_num_workers", "parse_bool",
           "parse_tool_args"]

C = TypeVar("C")


def option(default: Any, help: str) -> Any:
    """A config field: its default and its one-line ``--help`` text (one source for both)."""
    return dataclasses.field(default=default, metadata={"help": help})


def default_of(config: type, field: str) -> Any:
    """The default ``config`` (a config dataclass) writes for ``field``: the one place a
    hyperparameter's default lives; a method's constructor takes its defaults from here.

    Example:
        >>> from scene_ssl.models import MLSConfig
        >>> default_of(MLSConfig, "topk"), default_of(MLSConfig, "queue_size")
        (20, 4096)
    """
    spec = {f.name: f for f in dataclasses.fields(config)}.get(field)
    if spec is None:
        raise AttributeError(f"{config.__name__} has no field {field!r}")
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    raise ValueError(f"{config.__name__}.{field} has no default")


def flag_name(field: str) -> str:
    """``ia_temperature`` -> ``--ia-temperature``."""
    return "--" + field.replace("_", "-")


# -- values ---------------------------------------------------------------------------------

def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _convert(name: str, tp, value: Any) -> Any:
    """Coerce a YAML / CLI value to the field's type, or raise ValueError naming the field."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ValueError(f"config field {name!r} may not be empty")
    if typing.get_origin(inner) is tuple:  # tuple[int, ...]: a YAML list or "a,b,c"
        item = typing.get_args(inner)[0]
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError(f"config field {name!r} expects a list of {item.__name__}, got {value!r}")
        return tuple(_convert(name, item, v.strip() if isinstance(v, str) else v) for v in items)
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if inner is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if inner is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if inner is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ValueError(f"config field {name!r} expects {getattr(inner, '__name__', inner)}, got {value!r}")


def _fields(cls) -> dict[str, tuple[Any, dataclasses.Field]]:
    """field name -> (resolved type, field)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def _read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a config file must be a mapping of field: value")
    return loaded


class UnknownConfigKey(ValueError):
    """A key the config does not have; its message names the key and where it was written."""


def _resolve(cls, sources: list[tuple[str, dict]]) -> dict[str, Any]:
    fields = _fields(cls)
    values: dict[str, Any] = {}
    for where, mapping in sources:
        for key, value in mapping.items():
            name = str(key).replace("-", "_")
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(fields))}"
                raise UnknownConfigKey(f"unknown config key {key!r} in {where}{hint}")
            values[name] = _convert(name, fields[name][0], value)
    return values


def load_config(cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """Defaults of ``cls``, then the YAML file, then ``overrides``; unknown keys are errors.

    A config class may define ``check()`` (raise ValueError naming the field); it runs last.
    """
    sources = ([(str(path), _read_yaml(path))] if path is not None else []) + (
        [("the command line", overrides)] if overrides else [])
    cfg = cls(**_resolve(cls, sources))
    if hasattr(cfg, "check"):
        cfg.check()
    return cfg


# -- the command line -----------------------------------------------------------------------
#
# One convention for every recipe and tool (the README's table): --config YAML, --output-dir,
# --data, --seed / --seeds 0,1,2, --num-workers, and booleans as --flag true|false (a bare
# --flag means true). The argparse tools (shards, hub, benchmarks) use the helpers below.

def parse_bool(text: str) -> bool:
    """``true`` / ``false`` (also 1 / 0, yes / no, on / off) as a bool, for ``--flag true|false``."""
    return _convert("flag", bool, text)


def add_bool_flag(parser: argparse.ArgumentParser, flag: str, default: bool, help: str) -> None:
    """``--flag true|false`` (a bare ``--flag`` means true), as every recipe's booleans."""
    parser.add_argument(flag, nargs="?", const=True, default=default, type=parse_bool, metavar="BOOL",
                        help=f"{help} (default: {str(default).lower()})")


class _DeprecatedAlias(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is deprecated; use {self.metadata}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_output_dir(parser: argparse.ArgumentParser, default: str | None, help: str, *, old: str | None = None) -> None:
    """``--output-dir DIR`` (required without a default); ``old`` (e.g. ``--out``) still
    accepted with a one-line deprecation notice."""
    parser.add_argument("--output-dir", default=default, required=default is None and old is None, metavar="DIR",
                        help=f"{help}" + (f" (default: {default})" if default else " (required)"))
    if old:
        action = parser.add_argument(old, dest="output_dir", action=_DeprecatedAlias, help=argparse.SUPPRESS)
        action.metadata = "--output-dir"


def add_num_workers(parser: argparse.ArgumentParser, default: int, help: str = "data-loader processes", *,
                    old: str | None = None) -> None:
    """``--num-workers N``; ``old`` (e.g. ``--workers``) still accepted with a one-line notice."""
    parser.add_argument("--num-workers", type=int, default=default, metavar="INT", help=f"{help} (default: {default})")
    if old:
        action = parser.add_argument(old, dest="num_workers", type=int, action=_DeprecatedAlias, help=argparse.SUPPRESS)
        action.metadata = "--num-workers"


def parse_tool_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that also insists on ``--output-dir`` where it has no default
    (given under its old spelling too), and reads a bare boolean flag as true even before a
    positional argument (``--private out/run org/name``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {s for a in parser._actions if a.type is parse_bool for s in a.option_strings}  # noqa: SLF001
    bools = {"true", "false", "1", "0", "yes", "no", "on", "off"}
    for i in reversed(range(len(argv))):
        if argv[i] in flags and (i + 1 == len(argv) or argv[i + 1].lower() not in bools):
            argv.insert(i + 1, "true")
    args = parser.parse_args(argv)
    if getattr(args, "output_dir", "") is None:
        parser.error("the following arguments are required: --output-dir")
    return args


def _metavar(tp) -> str:
    inner, optional = _unwrap_optional(tp)
    if typing.get_origin(inner) is tuple:
        return {int: "INT", float: "FLOAT"}.get(typing.get_args(inner)[0], "STR") + ",..."
    name = {bool: "BOOL", int: "INT", float: "FLOAT"}.get(inner, "STR")
    return name + ("|none" if optional else "")


def parse_config(cls: type[C], argv: Sequence[str] | None = None, default_config: str | Path | None = None,
                 description: str | None = None) -> C:
    """Build ``cls`` from ``--config`` and ``--field-name value`` flags (``argv`` = sys.argv[1:]).

    ``default_config`` is the YAML used when no ``--config`` is given. ``--help`` lists every
    field with its help text and the default that applies once that YAML is read.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    path = known.config or default_config
    from_yaml = _resolve(cls, [(str(path), _read_yaml(path))]) if path is not None else {}

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, metavar="YAML",
                        help=f"YAML file overriding the defaults (default: {default_config or 'none'})")
    for name, (tp, f) in _fields(cls).items():
        default = from_yaml.get(name, f.default)
        where = f", from {Path(path).name}" if name in from_yaml else ""
        bare = {"nargs": "?", "const": "true"} if _unwrap_optional(tp)[0] is bool else {}  # a bare --flag means true
        parser.add_argument(flag_name(name), dest=name, default=argparse.SUPPRESS, metavar=_metavar(tp), **bare,
                            help=f"{f.metadata.get('help', '')} (default: {default}{where})".replace("%", "%%"))
    args = vars(parser.parse_args(argv))
    args.pop("config")
    return load_config(cls, path, args)


def parse_recipe_config(cls: type[C], argv: Sequence[str] | None, default_config: str | Path, description: str | None = None) -> C:
    """:func:`parse_config` for a recipe with a default YAML, telling the user when it is used."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if (not any(a == "--config" or a.startswith("--config=") for a in argv) and not {"-h", "--help"} & set(argv)
            and is_main_process()):
        print(f"no --config given: using {default_config} (the embedded quick run)")
    return parse_config(cls, argv, default_config=default_config, description=description)


def config_to_dict(cfg) -> dict[str, Any]:
    """The config as plain YAML / JSON values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def save_config(cfg, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


# -- errors ---------------------------------------------------------------------------------

#: what a user's input or machine raises: bad values, specs and hyperparameters, missing files,
#: damaged checkpoints (a ValueError), a disk too full to write a checkpoint or an export
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, InsufficientDiskSpace)
#: a run that failed on its own (exit status 1), said in one line too
RUN_FAILURES = (NonFiniteLossError,)


def _with_flag(message: str, cls) -> str:
    """Prefix the flag of the config field the message names first: ``--topk: topk=32 ...``."""
    if cls is None or message.startswith("unknown config key"):  # it names the key and the file itself
        return message
    found = []
    for name in _fields(cls):
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message)
        if match:
            found.append((match.start(), -len(name), name))  # earliest; at a tie, the longest
    return f"{flag_name(min(found)[2])}: {message}" if found else message


@contextmanager
def user_errors(cls=None) -> Iterator[None]:
    """Errors a user caused -> one line ``error: --flag: what is wrong`` on stderr, exit status 2;
    a run that failed on its own (a non-finite loss) -> one line, exit status 1.

    ``cls`` is the recipe's config class, used to name the flag. Set ``SCENE_SSL_DEBUG=1`` to
    see the full traceback. Every process exits; only rank 0 prints.
    """
    try:
        yield
    except USER_ERRORS + RUN_FAILURES as e:
        if os.environ.get("SCENE_SSL_DEBUG"):
            traceback.print_exc()
        failure = isinstance(e, RUN_FAILURES)
        if is_main_process():
            line = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"error: {line if failure else _with_flag(line, cls)}", file=sys.stderr)
        sys.exit(1 if failure else 2)
