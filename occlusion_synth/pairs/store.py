"""Disk-backed id sets and index rows, so the main process's memory stays flat in the dataset size.

Lowest layer of :mod:`occlusion_synth.pairs` (imports nothing of it). SQLite (standard library)
in a scratch file under ``OUT/.occsynth/``, written without fsync (it is rebuilt from the
journal on every start, so losing it costs nothing) and deleted on close.

- :class:`IdState`: sample key -> state (``done``, ``redo``, ``reader``, ``seen`` ...), last write wins.
- :class:`RowStore`: index rows keyed by journal key (last record per key wins), read back sorted.
- :class:`BlobStore`: key -> bytes (an earlier run's landmarks for ``landmarks="cached"``).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Optional


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-journal", "-wal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA temp_store=FILE")
    conn.execute("PRAGMA cache_size=-8192")  # 8 MiB page cache, whatever the dataset size
    return conn


class _Scratch:
    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        self.conn: Optional[sqlite3.Connection] = _connect(self.path)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            for suffix in ("", "-journal", "-wal"):
                try:
                    os.unlink(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IdState(_Scratch):
    """A mapping key -> short state string kept on disk."""

    def __init__(self, path: os.PathLike | str):
        super().__init__(path)
        self.conn.execute("CREATE TABLE s (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO s VALUES (?, ?)", (key, value))

    def get(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT v FROM s WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def has(self, key: str, value: str) -> bool:
        """Whether ``key`` is in state ``value``."""
        return self.get(key) == value

    def add_new(self, key: str, value: str = "seen") -> bool:
        """Set ``key`` to ``value`` unless present; return True if it was present."""
        cur = self.conn.execute("INSERT OR IGNORE INTO s VALUES (?, ?)", (key, value))
        return cur.rowcount == 0

    def count(self, value: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM s WHERE v = ?", (value,)).fetchone()[0]


class RowStore(_Scratch):
    """Index rows grouped by journal key; a later group with the same key replaces the earlier one.

    Each row has a kind (``pair``, ``skip``, ``faces``), a sort key (text), its output line and up
    to four fields used for counting.
    """

    def __init__(self, path: os.PathLike | str):
        super().__init__(path)
        self.conn.execute("CREATE TABLE r (key TEXT, kind TEXT, sort TEXT, line TEXT, "
                          "a TEXT, b TEXT, c TEXT, d TEXT)")
        self.conn.execute("CREATE INDEX r_key ON r (key)")
        self._open = False

    def put(self, key: str, rows: Iterable[tuple]) -> None:
        """Replace the rows of ``key`` by ``rows`` = ``(kind, sort, line, a, b, c, d)`` tuples."""
        if not self._open:
            self.conn.execute("BEGIN")
            self._open = True
        self.conn.execute("DELETE FROM r WHERE key = ?", (key,))
        self.conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ((key, *row) for row in rows))

    def _done(self) -> None:
        if self._open:
            self.conn.execute("COMMIT")
            self._open = False
            self.conn.execute("CREATE INDEX IF NOT EXISTS r_sort ON r (kind, sort)")

    def lines(self, kind: str) -> Iterator[str]:
        """The lines of ``kind`` sorted by their sort key (streamed)."""
        self._done()
        for (line,) in self.conn.execute("SELECT line FROM r WHERE kind = ? ORDER BY sort, line", (kind,)):
            yield line

    def counts(self, kind: str, column: str) -> dict[str, int]:
        """``{value: rows}`` of one field (``a``..``d``) over the rows of ``kind``."""
        self._done()
        assert column in ("a", "b", "c", "d")
        return {v: n for v, n in self.conn.execute(
            f"SELECT {column}, COUNT(*) FROM r WHERE kind = ? GROUP BY {column} ORDER BY {column}", (kind,))}

    def counts2(self, kind: str, first: str, second: str) -> dict[str, dict[str, int]]:
        """``{first value: {second value: rows}}``."""
        self._done()
        assert first in ("a", "b", "c", "d") and second in ("a", "b", "c", "d")
        out: dict[str, dict[str, int]] = {}
        for x, y, n in self.conn.execute(f"SELECT {first}, {second}, COUNT(*) FROM r WHERE kind = ? "
                                         f"GROUP BY {first}, {second} ORDER BY {first}, {second}", (kind,)):
            out.setdefault(x, {})[y] = n
        return out

    def total(self, kind: str, distinct: Optional[str] = None) -> int:
        self._done()
        what = f"COUNT(DISTINCT {distinct})" if distinct in ("a", "b", "c", "d") else "COUNT(*)"
        return self.conn.execute(f"SELECT {what} FROM r WHERE kind = ?", (kind,)).fetchone()[0]


class BlobStore(_Scratch):
    """A mapping key -> bytes kept on disk (last write wins); filled in batches, then read."""

    def __init__(self, path: os.PathLike | str):
        super().__init__(path)
        self.conn.execute("CREATE TABLE b (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT OR REPLACE INTO b VALUES (?, ?)", items)
        self.conn.execute("COMMIT")

    def get(self, key: str) -> Optional[bytes]:
        row = self.conn.execute("SELECT v FROM b WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM b").fetchone()[0]
