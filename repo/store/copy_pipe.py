"""COPYs to PostgreSQL sent by a second thread, so the server writes while we read on.

A COPY returns only once the server has written every row, and an import's rows come a
window of the file at a time: waiting for each COPY made the server's work and ours add up
(118,000 images: 13 s of 58 s spent waiting). Here `insert_rows` hands each COPY to one thread
per transaction and goes back to reading the file; the thread sends the rows and waits for the
server, with the GIL released. Any other use of the connection first waits for the COPYs handed
over (the engine's `before_cursor_execute` and `commit` events call `settle`), so statements
still run in the order they were issued, and a COPY's error is raised there, as the statement's
own error would have been. Code that must see an insert's error at once (a unique name) calls
`settle` itself. A rollback (an error, Ctrl-C) drops the COPYs still queued and cancels the one
being sent, which may be waiting for a lock: the user is not kept waiting for work thrown away.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

_PIPE = "dsrepo_copy_pipe"  # the key of a connection's pipe in its `info`
AHEAD = 4  # COPYs handed over and not yet sent, at most: the reader waits beyond (memory)
_STOP = None  # the queue's last item: the transaction is over


class CopyPipe:
    """The COPYs of one transaction, in order, on one driver connection."""

    def __init__(self, connection: Connection):
        self._driver = connection.connection.driver_connection
        self._error_class = connection.dialect.loaded_dbapi.Error
        # COPYs (statement, rows), events set once every item before them is done, or _STOP.
        self._items: queue.Queue[tuple[str, list[Sequence[Any]]] | threading.Event | None] = queue.Queue(AHEAD)
        self.error: BaseException | None = None
        self._dropping = False  # the transaction rolls back: what is queued is not sent
        self._sending = False
        self._thread = threading.Thread(target=self._send, name="dsrepo-copy", daemon=True)
        self._thread.start()

    def put(self, statement: str, rows: list[Sequence[Any]]) -> None:
        self._items.put((statement, rows))

    def wait(self) -> None:
        """Until every COPY handed over has been written (or has failed)."""
        done = threading.Event()
        self._items.put(done)
        done.wait()

    def drop(self) -> None:
        """Send nothing more, cancel the COPY being sent, and end the thread."""
        self._dropping = True
        if self._sending:
            try:
                self._driver.cancel_safe()
            except self._error_class:
                pass  # the COPY could not be cancelled (a broken connection): it ends on its own
        self._items.put(_STOP)
        self._thread.join()

    def stop(self) -> None:
        self._items.put(_STOP)
        self._thread.join()

    def _send(self) -> None:
        while (item := self._items.get()) is not _STOP:
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._sending = True
            if self.error is None and not self._dropping:  # after a failure the transaction only rolls back
                self._copy(*item)
            self._sending = False

    def _copy(self, statement: str, rows: list[Sequence[Any]]) -> None:
        try:
            with self._driver.cursor() as cursor, cursor.copy(statement) as writer:
                for row in rows:
                    writer.write_row(row)
        except self._error_class as exc:
            self.error = DBAPIError.instance(statement, None, exc, self._error_class)
        except Exception as exc:  # noqa: BLE001 - raised in the main thread by `settle`, as it is
            self.error = exc


def put_copy(connection: Connection, statement: str, rows: list[Sequence[Any]]) -> None:
    """Hand a COPY to the connection's pipe (started at its transaction's first COPY)."""
    pipe = connection.info.get(_PIPE)
    if pipe is None:
        pipe = connection.info[_PIPE] = CopyPipe(connection)
    pipe.put(statement, rows)


def settle(connection: Connection) -> None:
    """Wait for the COPYs handed over; raise the first one's error, if one failed."""
    pipe = connection.info.get(_PIPE)
    if pipe is None:
        return
    pipe.wait()
    if pipe.error is not None:
        del connection.info[_PIPE]
        pipe.stop()
        raise pipe.error


def pipe_copies(engine: Engine) -> None:
    """Make the engine's connections wait for their COPYs before anything else they do."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before_statement(connection: Connection, *_: Any) -> None:
        settle(connection)

    @event.listens_for(engine, "commit")
    def _before_commit(connection: Connection) -> None:
        settle(connection)
        pipe = connection.info.pop(_PIPE, None)
        if pipe is not None:
            pipe.stop()

    @event.listens_for(engine, "rollback")
    def _before_rollback(connection: Connection) -> None:
        pipe = connection.info.pop(_PIPE, None)
        if pipe is not None:
            pipe.drop()
