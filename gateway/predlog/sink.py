"""Where assembled paired records go. The request path only ever calls ``submit``."""

from __future__ import annotations

from typing import Protocol

from gateway.predlog.record import PairedRecord


class RecordSink(Protocol):
    """Accepts records without blocking and without raising; losses are counted by the sink."""

    def submit(self, record: PairedRecord) -> None: ...


class MemorySink:
    """Keeps records in a list: for tests and for running without a log."""

    def __init__(self) -> None:
        self.records: list[PairedRecord] = []

    def submit(self, record: PairedRecord) -> None:
        self.records.append(record)
