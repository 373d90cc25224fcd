"""Name -> plugin registries for erasers and tasks.

Plugins are found through the entry-point groups ``erasebench.erasers`` and
``erasebench.tasks``; the in-tree ones are declared there too, so a third-party plugin
takes exactly the same route. An entry point stays a lazy ``"module:attr"`` string until
the plugin is asked for, so listing names imports neither torch nor any plugin module.
Code may also register a class directly with :func:`register_eraser` /
:func:`register_task` (a plugin under development, a test).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module, metadata
from typing import Any, Generic, TypeVar

from erasebench.errors import DuplicateNameError, PluginImportError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to plugin classes, resolving entry-point placeholders on first use."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind, self.group = kind, group
        self._entries: dict[str, str | type[T]] = {}
        self._discovered = False

    # -- filling ---------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for entry_point in metadata.entry_points(group=self.group):
            self._add(entry_point.name, entry_point.value)

    def _add(self, name: str, target: str | type[T]) -> None:
        existing = self._entries.get(name)
        if existing is None or _same_target(existing, target):
            # A class registered by its decorator replaces its own lazy placeholder.
            if existing is None or not isinstance(target, str):
                self._entries[name] = target
            return
        raise DuplicateNameError(
            f"{self.kind} name {name!r} is registered twice: by {_describe(existing)} "
            f"and by {_describe(target)}; rename one of them"
        )

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@register_eraser("uce")``."""

        def decorate(cls: type[T]) -> type[T]:
            self._discover()
            self._add(name, cls)
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Removes a name (tests use it to undo a temporary registration)."""
        self._entries.pop(name, None)

    # -- reading ---------------------------------------------------------------
    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def get(self, name: str) -> type[T]:
        self._discover()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        target = self._entries[name]
        if isinstance(target, str):
            target = self._load(name, target)
            self._entries[name] = target
        return target

    def _load(self, name: str, reference: str) -> type[T]:
        module_name, _, attribute = reference.partition(":")
        try:
            loaded: Any = import_module(module_name)
            for part in attribute.split(".") if attribute else []:
                loaded = getattr(loaded, part)
        except Exception as error:  # any failure inside a plugin must not hide the others
            raise PluginImportError(
                f"{self.kind} {name!r} (entry point {reference!r} in group {self.group!r}) "
                f"failed to import: {type(error).__name__}: {error}"
            ) from error
        if getattr(loaded, "name", None) not in (None, "", name):
            raise PluginImportError(
                f"{self.kind} entry point {name!r} points at {reference!r}, which is "
                f"registered as {loaded.name!r}"
            )
        loaded.name = name
        return loaded  # type: ignore[no-any-return]


def _same_target(a: str | type, b: str | type) -> bool:
    return _describe(a) == _describe(b)


def _describe(target: str | type) -> str:
    if isinstance(target, str):
        return target
    return f"{target.__module__}:{target.__qualname__}"


ERASERS: Registry[Any] = Registry("eraser", "erasebench.erasers")
TASKS: Registry[Any] = Registry("task", "erasebench.tasks")

register_eraser = ERASERS.register
register_task = TASKS.register
