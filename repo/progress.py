"""Progress of long work, reported to whoever is watching (the CLI draws a bar on stderr)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What long actions report to: stages, each of a known number of steps. The API's
    `progress=` arguments take any object with these three methods."""

    def start(self, label: str, total: int) -> None:
        """A new stage of `total` steps begins (the previous one, if any, is over)."""

    def advance(self, steps: int = 1) -> None:
        """`steps` more steps of the current stage are done."""

    def finish(self) -> None:
        """The action is over."""


class Silent:
    """Reports nothing: the API default, and the CLI's with --quiet or without a terminal."""

    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass
