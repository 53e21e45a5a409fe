"""The local audit trail: an append-only file of JSON lines whose records are hash-chained.

Each line is `{"seq": n, "prev": <hash of record n-1>, "msg": <the syslog message>,
"hash": sha256(seq, prev, msg)}`, so `verify` finds a record that was altered (its hash),
removed or reordered (the next record's `prev` and `seq`). The gateway and the CLI
(administrative actions) append to the same file; an flock orders them, and each writer
reads the last record again when the file grew under it.

A record is written with one write(2) before the event's caller goes on, so a crash of
the process loses none; the forwarder fsyncs the file at least once a second, so a power
cut can cost the last second. The file is also the forwarder's queue (see forwarder.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
_TAIL_BYTES = 1 << 16  # one record is a few KiB


@dataclass(frozen=True)
class Record:
    seq: int
    prev: str
    msg: str
    hash: str
    end: int  # byte offset just after this record's line


def record_hash(seq: int, prev: str, msg: str) -> str:
    return hashlib.sha256(f"{seq}\n{prev}\n{msg}".encode()).hexdigest()


class AuditFile:
    """Appends chained records; safe across the threads of one process and across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._known_size = -1
        self._seq = 0
        self._prev = GENESIS

    def append(self, msg: str) -> int:
        """Write one record; its sequence number."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._known_size:
                    self._seq, self._prev = _last_link(self.path, size)
                seq = self._seq + 1
                digest = record_hash(seq, self._prev, msg)
                line = json.dumps({"seq": seq, "prev": self._prev, "msg": msg, "hash": digest})
                data = (line + "\n").encode()
                os.write(self._fd, data)
                self._known_size = size + len(data)
                self._seq, self._prev = seq, digest
                return seq
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    @property
    def last_seq(self) -> int:
        """The last record this process wrote or saw (a CLI's later records show on the
        next append)."""
        return self._seq

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def _last_link(path: Path, size: int) -> tuple[int, str]:
    """The sequence number and hash of the file's last complete record."""
    if size == 0:
        return 0, GENESIS
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read(size - f.tell())
    for line in reversed(tail.splitlines()):
        try:
            record = json.loads(line)
            return int(record["seq"]), str(record["hash"])
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash: the chain goes on from the last whole record
    return 0, GENESIS


def read_records(path: Path, offset: int = 0, limit: int = 1000) -> list[Record]:
    """Up to `limit` whole records from byte `offset` (a torn last line is left for later)."""
    records: list[Record] = []
    if not path.exists():
        return records
    with open(path, "rb") as f:
        f.seek(offset)
        position = offset
        for line in f:
            if not line.endswith(b"\n") or len(records) >= limit:
                break
            position += len(line)
            try:
                data = json.loads(line)
                records.append(
                    Record(data["seq"], data["prev"], data["msg"], data["hash"], position)
                )
            except (ValueError, KeyError, TypeError):
                continue  # verify reports it; the forwarder skips it
    return records


@dataclass(frozen=True)
class Verdict:
    records: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, sent_seq: int = 0) -> Verdict:
    """Check every record and every link; each problem names its line number.

    `sent_seq` (the forwarder's cursor) catches records cut from the end of the file,
    which no link can show, as long as the collector had them."""
    problems: list[str] = []
    expected_seq, prev, count = 1, GENESIS, 0
    for number, line in _lines(path):
        try:
            data = json.loads(line)
            seq, link, msg, digest = data["seq"], data["prev"], data["msg"], data["hash"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"line {number}: not an audit record")
            continue
        count += 1
        if seq != expected_seq:
            problems.append(f"line {number}: record {seq} where {expected_seq} was expected")
        if link != prev:
            problems.append(f"line {number}: record {seq} does not follow the record before it")
        if record_hash(seq, link, msg) != digest:
            problems.append(f"line {number}: record {seq} was altered (hash mismatch)")
        expected_seq, prev = seq + 1, digest
    if sent_seq >= expected_seq:
        problems.append(
            f"the trail ends at record {expected_seq - 1} but record {sent_seq} was already "
            "sent to the collector: records were removed from the end"
        )
    return Verdict(count, problems)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line
