"""Backends by name: one :class:`Registry` per pluggable role (store, embedder, generator).

A backend registers a factory under a name; ``[store] backend = "sqlite"`` (or
``[embedding]``/``[generation] backend``) picks one. Third-party packages add backends
without touching ragtune through an entry point in the role's group (``ragtune.stores``,
``ragtune.embedders``, ``ragtune.generators``)::

    [project.entry-points."ragtune.stores"]
    mystore = "my_package.store:make_store"   # called like the built-in factories

>>> colours: Registry[str] = Registry("colour", "ragtune.test_colours")
>>> @colours.register("red")
... def _red(shade: int) -> str:
...     return f"red-{shade}"
>>> colours.create("red", 2)
'red-2'
>>> colours.create("blue", 1)
Traceback (most recent call last):
...
ragtune.errors.ConfigError: unknown colour backend 'blue' (known: red)
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from ragtune.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories of one role, by name; entry points of ``group`` are found on first miss."""

    def __init__(self, role: str, group: str) -> None:
        self.role = role
        self.group = group
        self._factories: dict[str, Callable[..., T]] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@STORES.register("sqlite")`` on a factory function."""
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory
        return add

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            self._factories.setdefault(ep.name, ep.load())

    def names(self) -> list[str]:
        """Every backend name known, built-in and from entry points."""
        self._load_plugins()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a known backend (entry points are read only on a miss)."""
        if name not in self._factories:
            self._load_plugins()
        return name in self._factories

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build backend ``name``; an unknown name is a :class:`ConfigError` listing the known."""
        factory = self._factories.get(name) if name in self else None
        if factory is None:
            raise ConfigError(f"unknown {self.role} backend '{name}' (known: "
                              f"{', '.join(self.names())})")
        return factory(*args, **kwargs)
