"""A blocking view of :class:`AsyncStore` for the CLI, scripts and tests.

The store's one implementation is async; this runs it on a private event loop in its own thread, so that it works
from plain code and from inside another running loop alike (a test that reads the database while the bot runs in
the same process).

How it is kept in step: :class:`Store`'s methods are not written out but generated from :class:`AsyncStore` when
this module is imported (:func:`_blocking_methods`): every public coroutine method of ``AsyncStore`` becomes a
method of the same name that runs it on the store's loop and returns its result. Each is made with
:func:`functools.wraps`, so ``help(Store)``, ``inspect.signature`` and editors show the async method's parameters,
return type (the awaited type: exactly what the blocking call returns) and docstring. A method added to
``AsyncStore`` is there at once; ``tests/bot/test_store.py`` checks that none is missing. Static type checkers do
not run the generator: for them the ``TYPE_CHECKING`` block below declares ``__getattr__``, so a generated method
type-checks (as ``Any``) instead of being reported missing. The store's plain attributes (``engine``, the read
caches) belong to its loop and are not exposed.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.store.async_store import AsyncStore
from classifier.flag_policy import DEFAULT_FLAG_THRESHOLD

T = TypeVar("T")
S = TypeVar("S", bound=type)

#: ``AsyncStore`` coroutines that are not per-call operations: :class:`Store` opens and closes the store itself.
NOT_BLOCKING = frozenset({"open", "close"})


def blocking_names() -> list[str]:
    """The public coroutine methods of :class:`AsyncStore` that :class:`Store` exposes as blocking calls."""
    return [
        name
        for name, member in inspect.getmembers(AsyncStore)
        if not name.startswith("_") and name not in NOT_BLOCKING and inspect.iscoroutinefunction(member)
    ]


def _blocking(name: str) -> Callable[..., Any]:
    method = getattr(AsyncStore, name)

    @functools.wraps(method)
    def call(self: Store, *args: Any, **kwargs: Any) -> Any:
        return self._run(getattr(self._store, name)(*args, **kwargs))

    call.__module__, call.__qualname__ = __name__, f"Store.{name}"
    doc = inspect.getdoc(method)
    call.__doc__ = f"Blocking :meth:`AsyncStore.{name}`." + (f"\n\n{doc}" if doc else "")
    return call


def _blocking_methods(cls: S) -> S:
    """Add a blocking method to ``cls`` for every name of :func:`blocking_names` (see the module docstring)."""
    for name in blocking_names():
        if name in vars(cls):
            raise TypeError(f"{cls.__name__}.{name} is written by hand; it is generated from AsyncStore")
        setattr(cls, name, _blocking(name))
    return cls


@_blocking_methods
class Store:
    """The same calls as :class:`AsyncStore`, returning their results; close it (or use ``with``) when done.

    Every public ``AsyncStore`` coroutine method is here under its own name with its own signature, generated (see
    the module docstring), except ``open`` (:meth:`open_sync` or the constructor) and ``close``.
    """

    if TYPE_CHECKING:  # the generated methods, for static type checkers (they do not run the class decorator)

        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, target: str | Path, default_threshold: float = DEFAULT_FLAG_THRESHOLD) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="moodbot-store-sync", daemon=True)
        self._thread.start()
        try:
            self._store = self._run(AsyncStore.open(target, default_threshold))
        except BaseException:
            self._stop()
            raise

    @classmethod
    def open_sync(cls, target: str | Path, default_threshold: float = DEFAULT_FLAG_THRESHOLD) -> Store:
        """Open (creating or migrating) the database at ``target``: a URL, or the path of an SQLite file."""
        return cls(target, default_threshold)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        """Let writes in progress finish, close the connections, then stop the store's loop and thread."""
        if not self._loop.is_closed():
            try:
                self._run(self._store.close())
            finally:
                self._stop()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
