"""Progress bars (tqdm) on stderr for the steps a user waits for: off with -q and whenever
stderr is not a terminal (pipes, CI, tests), so logs stay clean."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

_enabled: bool | None = None  # None: on exactly when stderr is a terminal


def set_enabled(flag: bool | None) -> None:
    """Force progress bars on or off (None: on when stderr is a terminal)."""
    global _enabled
    _enabled = flag


def enabled() -> bool:
    """Whether progress bars are shown: -q turns them off, and so does a stderr that is not a
    terminal (unless set_enabled(True) forced them on)."""
    if _enabled is not None:
        return _enabled
    return sys.stderr.isatty()


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, disabled unless enabled(); kwargs go to tqdm (desc, total, unit)."""
    return tqdm(iterable, file=sys.stderr, disable=not enabled(), leave=False, **kwargs)
