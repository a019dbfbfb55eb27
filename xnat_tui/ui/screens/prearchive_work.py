"""``lazy``: work for ``run_worker`` that makes its coroutine only when the worker starts."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


def lazy(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> Any:
    """``fn(*args)`` as a worker's work, called when the worker runs.

    A worker cancelled before it starts (an exclusive group's newer request, a closed
    screen) then leaves no never-awaited coroutine behind. Textual runs partials of
    coroutine functions as coroutines, as its own ``@work`` decorator does. Typed ``Any``
    like Textual's decorator: mypy cannot solve ``run_worker``'s union for a partial.
    """
    return partial(fn, *args)
