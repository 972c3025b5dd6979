"""The tamper-evident audit chain: each row carries the hash of the row before it.

Editing, deleting or reordering any row breaks the chain at that row, and `paperdesk audit
verify` names the first broken link.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

GENESIS = "0" * 64


def chain_hash(prev_hash: str, seq: int, wall_ns: int, session_id: int | None, kind: str, ref: str,
               payload: str) -> str:
    text = f"{prev_hash}|{seq}|{wall_ns}|{session_id}|{kind}|{ref}|{payload}"
    return hashlib.sha256(text.encode()).hexdigest()


def chain_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last audit row, or (0, GENESIS) for an empty chain."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    head: str
    broken_at: int | None = None
    ref: str = ""
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None

    def line(self) -> str:
        if self.intact:
            return f"audit chain intact: {self.rows} rows, head {self.head[:16]}"
        return f"audit chain BROKEN at row {self.broken_at} ({self.ref}): {self.problem}"


def verify_chain(conn: sqlite3.Connection) -> ChainReport:
    """Walk the chain from the first row; stop at the first row that does not follow from its predecessor."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    rows = conn.execute("SELECT seq, wall_ns, session_id, kind, ref, payload, prev_hash, hash FROM audit ORDER BY seq")
    for seq, wall_ns, session_id, kind, ref, payload, stored_prev, stored_hash in rows:
        if seq != expected_seq:
            return ChainReport(count, prev_hash, expected_seq, ref,
                               f"row {expected_seq} is missing (next present is {seq}): rows were deleted")
        if stored_prev != prev_hash:
            return ChainReport(count, prev_hash, seq, ref,
                               "its prev_hash does not match the row before it: rows were removed or reordered")
        if chain_hash(prev_hash, seq, wall_ns, session_id, kind, ref, payload) != stored_hash:
            return ChainReport(count, prev_hash, seq, ref, "its contents do not match its hash: the row was edited")
        prev_hash, expected_seq, count = stored_hash, seq + 1, count + 1
    return ChainReport(count, prev_hash)
