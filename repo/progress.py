"""Progress of long work, reported to whoever is watching (the CLI draws a bar on stderr)."""

from __future__ import annotations

from typing import Protocol

# A rate measured over less than this is noise: the first ETA of a 5 s import read 00:37:42.
ETA_AFTER_SECONDS = 2.0
ETA_AFTER_SHARE = 0.01  # of the stage's steps


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


def eta_seconds(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left in a stage at its average rate so far, or None while there is no rate worth
    showing: before 2 s of work and 1% of the steps."""
    if total <= 0 or done <= 0 or elapsed < ETA_AFTER_SECONDS or done < ETA_AFTER_SHARE * total:
        return None
    return elapsed * max(total - done, 0) / done


def format_eta(seconds: float) -> str:
    """`eta HH:MM:SS` (days, if any, before the hours: `eta 2d 03:00:00`)."""
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"eta {f'{days}d ' if days else ''}{hours:02d}:{minutes:02d}:{secs:02d}"
