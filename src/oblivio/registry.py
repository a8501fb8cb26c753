"""Small dict registries: ``register`` / ``create`` / ``names``.

Every pluggable piece of oblivio (datasets, models, unlearning methods, scenarios) lives in a
:class:`Registry`. String keys resolve through it, and an unknown key fails at once naming the valid ones.

Example:
    >>> from oblivio.registry import Registry
    >>> COLOURS = Registry("colour")
    >>> @COLOURS.register("red")
    ... def red(shade: int = 1) -> str:
    ...     return f"red{shade}"
    >>> COLOURS.create("red", shade=2)
    'red2'
    >>> COLOURS.names()
    ['red']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from string keys to factories (classes or functions)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator that stores ``obj`` under ``name`` and returns it unchanged."""
        key = self._normalise(name)

        def decorator(obj: T) -> T:
            if key in self._entries and not overwrite and self._entries[key] is not obj:
                raise KeyError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the factory registered under ``name`` (case and ``_``/``-`` insensitive)."""
        key = self._normalise(name)
        try:
            return self._entries[key]
        except KeyError:
            valid = ", ".join(self.names()) or "(none registered)"
            raise KeyError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered under ``name`` with the given arguments."""
        factory = self.get(name)
        return factory(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def option_problems(self, name: str, options: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
        """``(missing, unknown, valid)`` keyword options for ``name``'s factory: the required ones not in
        ``options``, the ones in ``options`` it does not take, and all it takes (empty lists when its signature
        cannot be read or it takes ``**kwargs``).

        Example:
            >>> R = Registry("thing")
            >>> _ = R.register("box")(lambda root, *, size=1: None)
            >>> R.option_problems("box", {"sise": 2})
            (['root'], ['sise'], ['root', 'size'])
        """
        import inspect

        factory = self.get(name)
        try:
            params = list(inspect.signature(factory).parameters.values())  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return [], [], []
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        valid = [p.name for p in named]
        missing = [p.name for p in named if p.default is p.empty and p.name not in options]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
        unknown = [] if takes_any else sorted(k for k in options if k not in valid)
        return missing, unknown, valid

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalise(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _normalise(name: str) -> str:
        return name.strip().lower().replace("_", "-")

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
