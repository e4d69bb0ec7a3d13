"""The cyclic garbage collector is paused inside a project's transactions and back on after,
an error included (reference counting frees COCO's acyclic records meanwhile)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from repo.project import Project


def test_transactions_pause_the_collector_and_restore_it(tmp_path: Path):
    assert gc.isenabled()
    with Project.create(tmp_path / "p") as project:
        with project.writing():
            assert not gc.isenabled()
            with project.reading():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner transaction did not turn it back on
        assert gc.isenabled()
        with pytest.raises(RuntimeError), project.reading():
            raise RuntimeError("boom")
        assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off(tmp_path: Path):
    with Project.create(tmp_path / "p") as project:
        gc.disable()
        try:
            with project.writing():
                pass
            assert not gc.isenabled()
        finally:
            gc.enable()
