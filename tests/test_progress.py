"""The progress bar's ETA: none until the stage has a rate (2 s and 1% of its steps), then the
average rate so far; a clock the test controls, no sleeping."""

from __future__ import annotations

from repo.cli import BarProgress
from repo.progress import eta_seconds, format_eta


def test_no_eta_before_two_seconds_and_one_percent():
    assert eta_seconds(1.9, 500, 1000) is None  # half done, but too early to have a rate
    assert eta_seconds(30.0, 9, 1000) is None  # long enough, but under 1% done
    assert eta_seconds(2.0, 10, 1000) == 2.0 * 990 / 10
    assert eta_seconds(5.0, 0, 0) is None


def test_eta_text():
    assert format_eta(297) == "eta 00:04:57"
    assert format_eta(3 * 3600 + 62.4) == "eta 03:01:02"
    assert format_eta(2 * 86400 + 3 * 3600) == "eta 2d 03:00:00"


def test_the_bar_shows_the_eta_once_it_has_a_rate():
    now = [100.0]
    bar = BarProgress(clock=lambda: now[0])
    bar.start("importing", 1000)
    bar.advance(5)
    now[0] = 101.0
    assert bar.eta_text() is None
    now[0] = 103.0
    bar.advance(4)
    assert bar.eta_text() is None  # 9 of 1000 steps: under 1%
    bar.advance(1)
    assert bar.eta_text() == format_eta(3.0 * 990 / 10) == "eta 00:04:57"
    bar.start("writing", 10)  # a new stage measures its own rate
    assert bar.eta_text() is None
    bar.finish()
