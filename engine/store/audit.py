"""The tamper-evident audit chain: each entry carries the hash of the entry before it.

Two kinds of entries. Events (a fill, a refusal, a state change, a command) are chained as they happen. And every
commit appends one `rows` entry holding the rows that commit wrote to the tables validation, reports, status and
recovery read (CHAINED): read back as the database stored them inside the same transaction, market data as its
inserts wrote it. A row written again later (an order's new state, the latest position) is chained again by the
commit that changed it.

`paperdesk audit verify` walks the links, then holds every row of those tables against the last value the chain
holds for it, and names the first table, row and field that differ, a chained row that is gone, and a row the
chain never saw. Bulky rows (market data, JSON states) are chained as a digest: a change to one is named by its
row, not its field.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import pickle
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.store.rows import canonical_json

GENESIS = "0" * 64
ROWS = "rows"  # the kind of the entry a commit appends for the rows it wrote
KEYS_PER_READ = 500  # keys looked up per statement when a commit's rows are read back
FULL, DIGEST, RANGE = "full", "digest", "range"  # how a table's rows are chained: values, a digest each, a range's


@dataclass(frozen=True, slots=True)
class Chained:
    """A table the chain covers: its key, the column naming its session, and how its rows are chained. Bulky rows
    are chained as digests: one per row (JSON states, replaced in place), or one per range of consecutive numbers
    (market data, appended in order, by far the most rows)."""

    table: str
    key: tuple[str, ...]
    owner: str = "session_id"
    how: str = FULL


CHAINED: dict[str, Chained] = {c.table: c for c in (
    Chained("sessions", ("id",), owner="id"),
    Chained("instruments", ("session_id", "symbol")),
    Chained("strategies", ("session_id", "name")),
    Chained("market_data", ("session_id", "seq"), how=RANGE),
    Chained("missed_market_data", ("session_id", "seq"), how=RANGE),
    Chained("decisions", ("session_id", "seq")),
    Chained("orders", ("session_id", "client_id")),
    Chained("order_events", ("session_id", "client_id", "n")),
    Chained("fills", ("session_id", "fill_id")),
    Chained("venue_events", ("session_id", "n")),
    Chained("venue_state", ("session_id",), how=DIGEST),
    Chained("equity", ("session_id", "ts")),
    Chained("positions", ("session_id", "symbol")),
    Chained("state_events", ("id",)),
    Chained("risk_state", ("session_id",), how=DIGEST),
    Chained("commands", ("id",)),
    Chained("behaviour_scores", ("session_id", "wall_ns")),
    Chained("behaviour_series", ("id",)),
)}
# the session row's columns the chain holds: what it ran with, and its last mark; status, restarts, the pid and the
# writer's counters are bookkeeping that other statements change
SESSION_COLUMNS = ("id", "started_wall_ns", "market_start_ns", "venue", "config_json", "config_hash",
                   "starting_cash")
MARK_COLUMNS = ("id", "heartbeat_wall_ns", "market_ts", "equity", "cash", "realised", "unrealised", "fees")


def chain_hash(prev_hash: str, seq: int, wall_ns: int, session_id: int | None, kind: str, ref: str,
               payload: str) -> str:
    text = f"{prev_hash}|{seq}|{wall_ns}|{session_id}|{kind}|{ref}|{payload}"
    return hashlib.sha256(text.encode()).hexdigest()


def chain_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last audit row, or (0, GENESIS) for an empty chain."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


# ---- writing: a commit's rows read back and chained ----------------------------------------------------------

COLUMNS_SQL = ("SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
               "WHERE m.type = 'table' ORDER BY m.name, p.cid")


def table_columns(rows: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """COLUMNS_SQL's rows as {table: its columns in order}."""
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return {table: tuple(columns) for table, columns in out.items()}


def stored_columns(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Every table's columns, as the database has them."""
    return table_columns(conn.execute(COLUMNS_SQL))


def row_text(columns: tuple[str, ...]) -> str:
    """SQL spelling a row's values one way each, by SQLite itself (off the event loop): quote() keeps the type and
    every digit of a float, so the text changes with any stored value."""
    return " || ',' || ".join(f"quote({name})" for name in columns)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def range_digest(rows: list[tuple[Any, ...]]) -> str:
    """Rows' digest over their values and types, floats bit for bit: a pickle without its memo (fast), so equal
    values give equal bytes whichever objects hold them (a third of repr's cost: market data is most rows)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.fast = True
    pickler.dump(rows)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:32]


Written = dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]  # RANGE table -> (its columns, rows inserted)


def written_blocks(written: Written) -> list[str]:
    """RANGE tables' rows as their inserts wrote them (stored as they are, never changed): a digest per run of
    consecutive numbers, KEYS_PER_READ rows at most, without reading them back. Pure: a worker thread may run it."""
    out = []
    for table, (columns, rows) in written.items():
        owner, number = (columns.index(name) for name in CHAINED[table].key)
        start = 0
        for end in range(1, len(rows) + 1):
            if end < len(rows) and end - start < KEYS_PER_READ and rows[end][owner] == rows[start][owner] \
                    and rows[end][number] == rows[end - 1][number] + 1:
                continue
            run = rows[start:end]
            out.append(json.dumps({"table": table, "range": [run[0][owner], run[0][number], run[-1][number]],
                                   "count": len(run), "digest": range_digest(run), "digest_of": columns},
                                  separators=(",", ":")))
            start = end
    return out


@dataclass(frozen=True, slots=True)
class RowsRead:
    """One statement fetching back rows a commit wrote. Its rows hold the columns, or for a DIGEST table its key and
    the text of digest_of."""

    table: str
    columns: tuple[str, ...]
    sql: str
    params: tuple[Any, ...]
    digest_of: tuple[str, ...] = ()


def _select(table: str, columns: tuple[str, ...], where: str, params: tuple[Any, ...]) -> RowsRead:
    spec = CHAINED[table]
    if spec.how == DIGEST:
        what = f"{', '.join(spec.key)}, {row_text(columns)}"
        return RowsRead(table, (*spec.key, "digest"), f"SELECT {what} FROM {table} WHERE {where}", params, columns)
    return RowsRead(table, columns, f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", params)


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers, at most KEYS_PER_READ long."""
    ordered = sorted(values)
    low = prev = ordered[0]
    for value in ordered[1:]:
        if value != prev + 1 or value - low >= KEYS_PER_READ:
            yield low, prev
            low = value
        prev = value
    yield low, prev


def reads_by_key(table: str, columns: tuple[str, ...], keys: Iterable[tuple[Any, ...]]) -> list[RowsRead]:
    """Statements fetching columns of the rows of table with these keys through its key's index: by the key's first
    column and ranges of consecutive numbers (when most are), or lists KEYS_PER_READ long, of its second. A third
    key column is not narrowed: the other rows of those first two (an order's earlier changes) are chained again as
    they are."""
    names = CHAINED[table].key
    if len(names) == 1:
        groups: dict[Any, dict[Any, None]] = {None: dict.fromkeys(key[0] for key in keys)}
    else:
        groups = {}
        for key in keys:
            groups.setdefault(key[0], {})[key[1]] = None
    first_is = "" if len(names) == 1 else f"{names[0]} = ? AND "
    column = names[0] if len(names) == 1 else names[1]
    out = []
    for first, wanted in groups.items():
        values = list(wanted)
        fixed = () if len(names) == 1 else (first,)
        runs = list(_runs(values)) if values and all(type(v) is int for v in values) else []
        if runs and len(runs) * 2 <= len(values):  # mostly consecutive (decisions, venue reports): ranges
            out += [_select(table, columns, f"{first_is}{column} BETWEEN ? AND ?", (*fixed, low, high))
                    for low, high in runs]
            continue
        for start in range(0, len(values), KEYS_PER_READ):
            chunk = values[start:start + KEYS_PER_READ]
            out.append(_select(table, columns, f"{first_is}{column} IN ({','.join('?' * len(chunk))})",
                               (*fixed, *chunk)))
    return out


def read_appended(table: str, columns: tuple[str, ...], after_rowid: int) -> RowsRead:
    """The statement fetching the rows appended to a rowid table after after_rowid."""
    return _select(table, columns, "rowid > ?", (after_rowid,))


def last_rowids_sql(tables: list[str]) -> str:
    """One statement giving each table's largest rowid (0 when empty): taken before a commit appends to them."""
    return "SELECT " + ", ".join(f"(SELECT COALESCE(MAX(rowid), 0) FROM {t})" for t in tables)


def session_reads(session_id: int, columns: dict[str, tuple[str, ...]]) -> list[RowsRead]:
    """A new session's row (what it runs with) and its instruments, chained when the session is stored."""
    return [*reads_by_key("sessions", SESSION_COLUMNS, [(session_id,)]),
            _select("instruments", columns["instruments"], "session_id = ?", (session_id,))]


@dataclass(slots=True)
class RowsEntry:
    """The payload of one `rows` entry: per statement, the rows it read back (or their digests), encoded as each is
    added (a large commit is never one long stretch of work on the event loop)."""

    blocks: list[str] = field(default_factory=list)

    def add(self, read: RowsRead, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        block: dict[str, Any] = {"table": read.table, "columns": read.columns}
        if read.digest_of:
            block.update(rows=[[*row[:-1], digest(row[-1])] for row in rows], digest_of=read.digest_of)
        else:
            block.update(rows=rows)
        self.blocks.append(json.dumps(block, separators=(",", ":")))

    def text(self) -> str:
        return '{"tables":[' + ",".join(self.blocks) + "]}"


def link(head: tuple[int, str], entries: list[tuple[int, int | None, str, str, str]]) -> list[tuple[Any, ...]]:
    """Audit rows chaining entries (wall_ns, session_id, kind, ref, payload) after head; a `rows` entry's ref is
    its own number."""
    seq, prev = head
    out = []
    for stamp, session_id, kind, ref, payload in entries:
        seq += 1
        ref = f"{ROWS}:{seq}" if kind == ROWS else ref
        digest = chain_hash(prev, seq, stamp, session_id, kind, ref, payload)
        out.append((seq, stamp, session_id, kind, ref, payload, prev, digest))
        prev = digest
    return out


def event_entries(session_id: int, events: list[tuple[int, str, str, dict[str, Any]]]
                  ) -> list[tuple[int, int | None, str, str, str]]:
    """The journal's event entries (wall_ns, kind, ref, payload) as entries to link."""
    return [(stamp, session_id, kind, ref, canonical_json(payload)) for stamp, kind, ref, payload in events]


INSERT_AUDIT = "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)"


def append_rows(conn: sqlite3.Connection, session_id: int, reads: list[RowsRead], stamp: int,
                head: tuple[int, str] | None = None, events: list[tuple[int, str, str, dict[str, Any]]] | None = None,
                written: Written | None = None) -> tuple[int, str]:
    """Inside the caller's transaction: chain events (the journal's), then in one `rows` entry the RANGE tables'
    rows as written ({table: (columns, rows)}) and reads' rows read back; returns the new head."""
    entry = RowsEntry(written_blocks(written or {}))
    for read in reads:
        entry.add(read, conn.execute(read.sql, read.params).fetchall())
    entries = event_entries(session_id, events or [])
    if entry.blocks:
        entries.append((stamp, session_id, ROWS, "", entry.text()))
    start = chain_head(conn) if head is None else head
    rows = link(start, entries)
    conn.executemany(INSERT_AUDIT, rows)
    return (rows[-1][0], rows[-1][7]) if rows else start


# ---- verifying ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    head: str
    broken_at: int | None = None  # the audit row whose link is broken
    ref: str = ""
    problem: str = ""
    where: str = ""  # the table row that differs from the chain: "fills row 17 (session_id 1, fill_id 'F1')"
    table: str = ""
    rowid: int | None = None
    column: str = ""
    more: int = 0  # further differences after the first
    covered: int = 0  # table rows held against the chain
    legacy: tuple[int, ...] = ()  # sessions stored before every row was chained

    @property
    def intact(self) -> bool:
        return not self.problem

    def line(self) -> str:
        if self.intact:
            text = f"audit chain intact: {self.rows} rows, head {self.head[:16]}, {self.covered} table rows match it"
            if self.legacy:
                text += (f"; session{'s' if len(self.legacy) > 1 else ''} {', '.join(map(str, self.legacy))} "
                         "began before every row was chained: only their events and later rows are covered")
            return text
        more = f" (and {self.more} more difference{'s' if self.more > 1 else ''})" if self.more else ""
        if self.where:
            return f"audit chain BROKEN at {self.where}: {self.problem}{more}"
        return f"audit chain BROKEN at row {self.broken_at} ({self.ref}): {self.problem}"


@dataclass(slots=True)
class _Held:
    """What the chain holds for one table row: per column its value, or its digest, and the entry that chained it
    last."""

    values: dict[str, tuple[Any, int]] = field(default_factory=dict)
    digest: tuple[str, tuple[str, ...], int] | None = None

    def last_seq(self) -> int:
        seqs = [seq for _, seq in self.values.values()] + ([self.digest[2]] if self.digest else [])
        return max(seqs)


@dataclass(frozen=True, slots=True)
class _Range:
    """A RANGE block: rows first..last of a session's table, chained as count rows and one digest."""

    session_id: int
    first: int
    last: int
    count: int
    digest: str
    columns: tuple[str, ...]
    seq: int


@dataclass(slots=True)
class _Chain:
    rows: dict[str, dict[tuple[Any, ...], _Held]] = field(default_factory=dict)
    ranges: dict[str, list[_Range]] = field(default_factory=dict)

    def hold(self, payload: dict[str, Any], seq: int) -> None:
        for block in payload["tables"]:
            spec = CHAINED[block["table"]]
            if "range" in block:
                session_id, first, last = block["range"]
                self.ranges.setdefault(spec.table, []).append(
                    _Range(session_id, first, last, block["count"], block["digest"], tuple(block["digest_of"]), seq))
                continue
            columns = block["columns"]
            at = [columns.index(name) for name in spec.key]
            table = self.rows.setdefault(spec.table, {})
            for row in block["rows"]:
                entry = table.setdefault(tuple(row[i] for i in at), _Held())
                if "digest_of" in block:
                    entry.digest = (row[-1], tuple(block["digest_of"]), seq)
                else:
                    entry.values.update((name, (value, seq)) for name, value in zip(columns, row, strict=True))


def verify_chain(conn: sqlite3.Connection) -> ChainReport:
    """Walk the chain from the first row; stop at the first row that does not follow from its predecessor. Then
    hold every chained table's rows against what the chain holds for them (in one read transaction)."""
    if not conn.in_transaction:
        conn.execute("BEGIN")  # one snapshot: a running session's commits cannot slip in between the reads
    prev_hash, expected_seq, count = GENESIS, 1, 0
    chain = _Chain()
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
        if kind == ROWS:
            chain.hold(json.loads(payload), seq)
        prev_hash, expected_seq, count = stored_hash, seq + 1, count + 1
    # audit_legacy is not chained: a session the chain saw being stored is never legacy, whatever it lists
    created = {key for key, held in chain.rows.get("sessions", {}).items() if "config_json" in held.values}
    legacy = tuple(sid for sid in _legacy_sessions(conn) if (sid,) not in created)
    differences, covered = _compare(conn, chain, set(legacy))
    if not differences:
        return ChainReport(count, prev_hash, covered=covered, legacy=legacy)
    differences.sort(key=lambda d: d[0])
    _, table, rowid, where, column, problem = differences[0]
    return ChainReport(count, prev_hash, problem=problem, where=where, table=table, rowid=rowid, column=column,
                       more=len(differences) - 1, covered=covered, legacy=legacy)


def _legacy_sessions(conn: sqlite3.Connection) -> tuple[int, ...]:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_legacy'").fetchone() is None:
        return tuple(sid for (sid,) in conn.execute("SELECT id FROM sessions ORDER BY id"))
    return tuple(sid for (sid,) in conn.execute("SELECT session_id FROM audit_legacy ORDER BY session_id"))


NEVER_CHAINED = 1 << 62  # sorts a row the chain never saw after every difference in a chained one
NOT_CHAINED = "in the database but not in the audit chain (added without an audit entry)"

Difference = tuple[int, str, int | None, str, str, str]  # (sort seq, table, rowid, where, column, problem)


def _compare(conn: sqlite3.Connection, chain: _Chain, legacy: set[int]) -> tuple[list[Difference], int]:
    columns = stored_columns(conn)
    out: list[Difference] = []
    covered = 0
    for spec in CHAINED.values():
        if spec.table not in columns:
            continue
        if spec.how == RANGE:
            covered += _compare_ranges(conn, spec, chain.ranges.get(spec.table, []), legacy, out)
            continue
        chained = chain.rows.get(spec.table, {})
        seen: set[tuple[Any, ...]] = set()
        names = columns[spec.table]
        text = f", {row_text(names)}" if spec.how == DIGEST else ""
        index = {name: i for i, name in enumerate(names)}
        at = [index[name] for name in spec.key]
        owner = index[spec.owner]
        pending = index.get("handled_wall_ns") if spec.table == "commands" else None
        for rowid, *values in conn.execute(f"SELECT rowid, {', '.join(names)}{text} FROM {spec.table}"):
            key = tuple(values[i] for i in at)
            where = f"{spec.table} row {rowid} ({_key_text(spec, key)})"
            entry = chained.get(key)
            if entry is None:
                # a legacy session's earlier rows, and a command queued but not yet applied, are not chained
                if values[owner] not in legacy and (pending is None or values[pending] is not None):
                    out.append((NEVER_CHAINED + len(out), spec.table, rowid, where, "", NOT_CHAINED))
                continue
            seen.add(key)
            covered += 1
            problem = _differs(entry, values, index, names)
            if problem is not None:
                out.append((entry.last_seq(), spec.table, rowid, where, *problem))
        for key in chained.keys() - seen:
            entry = chained[key]
            out.append((entry.last_seq(), spec.table, None, f"{spec.table} row ({_key_text(spec, key)})", "",
                        f"deleted: audit row {entry.last_seq()} chained it, the database no longer has it"))
    return out, covered


def _compare_ranges(conn: sqlite3.Connection, spec: Chained, ranges: list[_Range], legacy: set[int],
                    out: list[Difference]) -> int:
    """Each range's rows against its digest, then every row against the ranges: one that none covers was added."""
    owner, number = spec.key
    covered = 0
    spans: dict[int, list[tuple[int, int]]] = {}
    for r in ranges:
        spans.setdefault(r.session_id, []).append((r.first, r.last))
        rows = conn.execute(f"SELECT {', '.join(r.columns)} FROM {spec.table} WHERE {owner} = ? AND {number} "
                            f"BETWEEN ? AND ? ORDER BY {number}", (r.session_id, r.first, r.last)).fetchall()
        if len(rows) == r.count and range_digest(rows) == r.digest:
            covered += r.count
            continue
        where = f"{spec.table} {number} {r.first} to {r.last} ({owner} {r.session_id})"
        at = r.columns.index(number)
        gone = sorted(set(range(r.first, r.last + 1)) - {row[at] for row in rows})
        if r.count == r.last - r.first + 1 and gone:
            problem = (f"{number} {gone[0]} was deleted: audit row {r.seq} chained {r.count} rows here, "
                       f"{len(rows)} remain")
        else:
            problem = (f"a row differs from what audit row {r.seq} chained ({r.count} rows then, {len(rows)} now; "
                       "market data is chained as one digest per range, so the row and field are not named)")
        out.append((r.seq, spec.table, None, where, "", problem))
    for merged in spans.values():
        merged.sort()
    for rowid, session_id, value in conn.execute(f"SELECT rowid, {owner}, {number} FROM {spec.table} "
                                                 f"ORDER BY {owner}, {number}"):
        if session_id in legacy:
            continue
        held = spans.get(session_id, [])
        at = bisect.bisect_right(held, (value, 1 << 62)) - 1
        if at < 0 or held[at][1] < value:
            out.append((NEVER_CHAINED + len(out), spec.table, rowid,
                        f"{spec.table} row {rowid} ({owner} {session_id}, {number} {value})", "", NOT_CHAINED))
    return covered


def _differs(entry: _Held, values: list[Any], index: dict[str, int],
             names: tuple[str, ...]) -> tuple[str, str] | None:
    """(column, what differs) between a row and what the chain holds for it, or None when they agree."""
    for name, (chained, seq) in entry.values.items():
        if name not in index:
            return name, f"its {name} column is gone; audit row {seq} chained {chained!r}"
        stored = values[index[name]]
        if type(stored) is not type(chained) or repr(stored) != repr(chained):
            return name, f"{_what_differs(name, stored, chained)} when chained (audit row {seq})"
    if entry.digest is not None:
        chained_digest, columns, seq = entry.digest
        if columns != names:
            return "", f"its table's columns changed since audit row {seq} chained it"
        if digest(values[-1]) != chained_digest:
            return "", (f"its contents differ from what audit row {seq} chained (chained as a digest, so the field "
                        "is not named)")
    return None


def _what_differs(name: str, stored: Any, chained: Any) -> str:
    """'price is 101.3 in the database, 100.3'; inside JSON text, the first value that differs and where."""
    if isinstance(stored, str) and isinstance(chained, str) and stored[:1] in "[{" and chained[:1] in "[{":
        try:
            path, a, b = _first_json_difference(json.loads(stored), json.loads(chained), name)
        except ValueError:  # not JSON after all, or the same document spelt otherwise
            pass
        else:
            return f"{path} is {a!r} in the database, {b!r}"
    return f"{name} is {stored!r} in the database, {chained!r}"


_ABSENT = "(absent)"


def _first_json_difference(a: Any, b: Any, path: str) -> tuple[str, Any, Any]:
    """The path of the first value that differs between two JSON documents, and the value on each side."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b or repr(a[key]) != repr(b[key]):
                return _first_json_difference(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if repr(x) != repr(y):
                return _first_json_difference(x, y, f"{path}[{i}]")
    if repr(a) == repr(b):
        raise ValueError("the same document")  # text that differs only in spelling: shown whole by the caller
    return path, a, b


def _key_text(spec: Chained, key: tuple[Any, ...]) -> str:
    return ", ".join(f"{name} {value!r}" for name, value in zip(spec.key, key, strict=True))
