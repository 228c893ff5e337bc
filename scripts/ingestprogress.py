"""`ragq ingest`'s progress bar (tqdm, on stderr): shown when stderr is a terminal, unless
`--no-progress`; a log or a pipe gets only the summary line."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self

from tqdm import tqdm


class ProgressBar:
    """A bar of `total` documents, moved to an absolute count with `update`."""

    def __init__(self, total: int, what: str, disabled: bool) -> None:
        self._bar = tqdm(
            total=total,
            desc=what,
            unit="doc",
            file=sys.stderr,
            disable=disabled or not sys.stderr.isatty(),
            dynamic_ncols=True,
        )

    def update(self, done: int) -> None:
        """Show `done` documents of the total."""
        self._bar.update(max(done - self._bar.n, 0))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.close()
