"""The method registry: one entry per method, and every consumer asks it.

Recipes, the export and its model card, the Hub push, ``--help`` and the benchmarks list
and name methods only through this table (modelled on timm's model registry). A method
is one file in :mod:`scene_ssl.models` — its module, its recipe config and a
:func:`register_method` call — plus the line in ``scene_ssl/models/__init__.py`` that
imports it. A project can register its own method the same way, without editing scene_ssl.

Example:
    >>> import scene_ssl.models  # registers the built-in methods
    >>> method_names()[:4]
    ['mocov2', 'mls', 'simsiam', 'bam']
    >>> get_method("mls").display_name, get_method("bam").config.__name__
    ('MLS', 'BAMConfig')
    >>> get_method("byol")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'byol'; registered: mocov2, mls, simsiam, bam...
"""
from __future__ import annotations

import dataclasses

from torch import nn

__all__ = ["MethodSpec", "register_method", "get_method", "method_names", "method_of"]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """Everything the package needs to know of a method.

    Attributes:
        name: the registry key: ``--method``, export names (``<arch>-<name>-<data>``),
            export tags, card tags, benchmark rows.
        display_name: how people write it (``"BAM + IA-CLoss"``).
        module: the ``nn.Module`` class that trains (what :func:`method_of` recognises).
        config: its recipe config, a :class:`~scene_ssl.models.PretrainConfig` subclass whose
            ``build_method()`` / ``build_views()`` make the module and its view transform.
        citation: BibTeX of the paper, copied into every card of an export it trained.
        paper: one line naming the paper (``--help`` and the README).
        quick_config: file in ``recipes/configs/`` of the embedded quick CPU run.
        paper_config: file in ``recipes/configs/`` of the paper's run, when there is one.
    """

    name: str
    display_name: str
    module: type[nn.Module]
    config: type
    citation: str
    paper: str
    quick_config: str
    paper_config: str | None = None


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the table (registering the same spec twice is a no-op)."""
    known = _METHODS.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"a different method is already registered as {spec.name!r} ({known.module.__name__})")
    _METHODS[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """The entry of ``name``; an unknown name is an error listing the registered ones."""
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(_METHODS)}")
    return _METHODS[name]


def method_names() -> list[str]:
    """Registered methods, in registration order."""
    return list(_METHODS)


def method_of(model: nn.Module) -> MethodSpec | None:
    """The entry whose module is ``model``'s class, or its nearest registered base (a
    subclass that only instruments a method is still that method); None if unregistered."""
    for cls in type(model).__mro__:
        for spec in _METHODS.values():
            if spec.module is cls:
                return spec
    return None
