"""Progress bars (tqdm) on stderr for the steps a user waits for: off with -q and whenever
stderr is not a terminal (pipes, CI, tests), so logs stay clean."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
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
    # a terminal that reports no size (0 x 0, as a bare pty) would hide every bar: assume 100 x 24
    size = shutil.get_terminal_size((100, 24))
    kwargs.setdefault("ncols", size.columns)
    kwargs.setdefault("nrows", size.lines)
    return tqdm(iterable, file=sys.stderr, disable=not enabled(), leave=False, **kwargs)


@contextlib.contextmanager
def steps(
    total: int, desc: str, unit: str, also: Callable[[str], None] | None = None
) -> Iterator[Callable[[str], None]]:
    """A bar of TOTAL steps; yields a callback(message) that advances it (and passes the
    message on to ALSO), for code that reports progress through a callback (demo.generate)."""
    with bar(total=total, desc=desc, unit=unit) as shown:

        def step(message: str) -> None:
            shown.update(1)
            shown.set_postfix_str(message.split(":")[0], refresh=False)
            if also is not None:
                also(message)

        yield step
