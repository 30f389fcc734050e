"""One small registry class for every extension point (models, datasets, optimizers, ...).

Modelled on timm's ``@register_model`` and torchvision's ``get_model``: a decorator fills
the registry, duplicate names are refused, and ``list("res*")`` filters with a glob.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate name; the message lists what is available."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named mapping from string keys to objects, filled by a decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("cnn")``. Refuses a name already taken."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def replace(self, name: str, obj: T) -> None:
        """Put ``obj`` under a name already taken (the caller decides when that is right)."""
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.list())}"
            ) from None

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style glob, e.g. ``list("res*")``."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._items)
