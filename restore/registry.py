"""Tiny name -> builder registries (archs, critics, norms, losses, datasets, tasks).

Every swappable part of an option file is a block ``{type: name, ...kwargs}`` (or ``{arch: name, ...}``) resolved
here. Unknown names list the valid ones; kwargs are checked against the builder's signature and type hints by
:mod:`restore.config` before anything is built.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class OptionValueError(ValueError):
    """A builder's complaint about one of its own options: ``key`` is the option name, the message says why.

    Builders (norms, archs, losses) raise it without knowing where the option came from; :mod:`restore.config`
    adds the file and the key path (``options/x.yml: critic.norm.ratio must be in (0, 1], got 1.5``).
    """

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}")
        self.key = key
        self.reason = message


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """Maps names to builders (classes or functions) of one kind of part.

    ``eager`` registries hold cheap builders (norms, losses): the config loader builds them once while validating so
    that value errors (``ratio must be in (0, 1]``) surface with the file and key before any training starts.
    """

    def __init__(self, kind: str, eager: bool = False):
        self.kind = kind
        self.eager = eager
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._builders[name] = builder
            return builder

        return deco

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._builders:
            raise KeyError(
                f"unknown {self.kind} '{name}'{did_you_mean(str(name), self.names())}; "
                f"valid: {', '.join(self.names())}"
            )
        return self._builders[name]

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """Keyword parameters the builder accepts (``self`` and ``*args`` dropped)."""
        sig = inspect.signature(self.get(name))
        return {
            p.name: p
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def build(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)


    def build_checked(self, name: str, kwargs: dict[str, Any]) -> T:
        """Build from plain kwargs, naming unknown options (for callers that bypass restore.config)."""
        params = self.parameters(name)
        for key in kwargs:
            if key not in params:
                valid = ", ".join(params) or "(none)"
                raise OptionValueError(key, f"is not an option of {self.kind} '{name}'"
                                            f"{did_you_mean(key, list(params))}; valid: {valid}")
        return self.build(name, **kwargs)


NORMS: Registry = Registry("critic norm", eager=True)
CRITICS: Registry = Registry("critic architecture")
GENERATORS: Registry = Registry("generator architecture")
DATASETS: Registry = Registry("dataset")
ADVERSARIAL: Registry = Registry("adversarial loss", eager=True)
TASKS: Registry = Registry("task")
"""Training pipelines by ``task:`` name; filled by importing :mod:`restore.tasks`."""
