"""Issue 16: the audit chain covers every row validation, reports and recovery read.

A real paper session is saved to a real SQLite file; copies of it are tampered with one way each, as someone with
the file and sqlite3 would. `audit verify` names the table, row and field; `validate` (and `report`, `evaluate`)
refuse the copy on their first line unless --ignore-audit, and then say on their first line that they read it
anyway. The behaviour score's time series is saved, chained and read back.
"""

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from console.cli import main
from engine.model.market import Bar, TradeTick
from engine.model.order import OrderSide
from engine.store.audit import verify_chain
from engine.store.read import behaviour_history
from engine.store.rows import canonical_json
from tests.conftest import make_config
from tests.store.helpers import query, stepped_session

CONFIG = make_config()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A stopped session that held, entered and exited, filled orders and marked its equity."""
    db = tmp_path_factory.mktemp("saved") / "desk.sqlite"
    asyncio.run(stepped_session(db, CONFIG, steps=600))
    signals = {s for (s,) in query(db, "SELECT DISTINCT signal FROM decisions")}
    assert {"HOLD", "LONG", "SHORT"} <= signals
    assert query(db, "SELECT COUNT(*) FROM fills")[0][0] > 0 and query(db, "SELECT COUNT(*) FROM equity")[0][0] > 0
    return db


def copy_of(saved: Path, folder: Path, sql: str, params: tuple = ()) -> Path:
    copy = folder / "copy.sqlite"
    shutil.copy(saved, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute(sql, params)
    conn.close()
    return copy


def cli(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def verify(capsys, db: Path) -> tuple[int, str]:
    code, out, _ = cli(capsys, "audit", "verify", "--db", str(db))
    assert len(out) == 1, out
    return code, out[0]


def first_fill(db: Path) -> tuple[int, str, float]:
    return query(db, "SELECT rowid, fill_id, price FROM fills ORDER BY rowid LIMIT 1")[0]


def assert_validate_refuses_and_reads_when_told(capsys, db: Path, broken: str, reads: bool = True) -> None:
    code, out, _ = cli(capsys, "validate", "--db", str(db))
    assert code == 1 and out[0] == f"validate refused: {broken}. Nothing was read past the audit check; pass " \
                                   "--ignore-audit to validate it anyway", out
    assert len(out) == 1  # nothing of the session was validated
    if not reads:
        return
    code, out, err = cli(capsys, "validate", "--db", str(db), "--ignore-audit")
    assert out[0] == f"{broken}; ignored (--ignore-audit): what follows reads rows that may have been altered"
    assert code in (0, 1) and any(line.startswith("behaviour score") for line in out[1:]), (out, err)


def test_an_untampered_session_verifies_and_validates(saved, capsys):
    code, line = verify(capsys, saved)
    rows = sum(query(saved, f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("fills", "decisions", "orders", "equity"))
    assert code == 0 and line.startswith("audit chain intact:") and "table rows match it" in line
    assert int(line.split(", ")[2].split()[0]) > rows  # the market data, positions, states... as well
    code, out, _ = cli(capsys, "validate", "--db", str(saved))
    assert code == 0 and out[0].startswith("session 1:") and "audit" not in out[0]


def assert_named(saved: Path, folder: Path, capsys, sql: str, params: tuple, named: str, reads: bool = True) -> None:
    """A copy of saved changed by sql: verify's line starts with named, and validate refuses it unless told (reads:
    and then reads it)."""
    copy = copy_of(saved, folder, sql, params)
    code, line = verify(capsys, copy)
    assert code == 1 and line.startswith(f"audit chain BROKEN at {named}"), line
    assert_validate_refuses_and_reads_when_told(capsys, copy, line, reads)


def test_a_fill_price_times_1_01_is_named_with_both_values(saved, tmp_path, capsys):
    rowid, fill_id, price = first_fill(saved)
    assert_named(saved, tmp_path, capsys, "UPDATE fills SET price = price * 1.01 WHERE rowid = ?", (rowid,),
                 f"fills row {rowid} (session_id 1, fill_id {fill_id!r}): price is {price * 1.01!r} in the database, "
                 f"{price!r} when chained (audit row ")


def test_a_deleted_fill_is_named(saved, tmp_path, capsys):
    rowid, fill_id, _ = first_fill(saved)
    assert_named(saved, tmp_path, capsys, "DELETE FROM fills WHERE rowid = ?", (rowid,),
                 f"fills row (session_id 1, fill_id {fill_id!r}): deleted: audit row ")


@pytest.mark.parametrize(("was", "becomes"), [("LONG", "SHORT"), ("HOLD", "LONG")],
                         ids=["a flipped signal", "a hold turned into an entry"])
def test_an_edited_decision_is_named_at_its_signal(saved, tmp_path, capsys, was, becomes):
    rowid, seq = query(saved, "SELECT rowid, seq FROM decisions WHERE signal = ? ORDER BY seq LIMIT 1", (was,))[0]
    assert_named(saved, tmp_path, capsys, "UPDATE decisions SET signal = ? WHERE rowid = ?", (becomes, rowid),
                 f"decisions row {rowid} (session_id 1, seq {seq}): signal is {becomes!r} in the database, {was!r} "
                 "when chained")


def test_an_order_state_changed_is_named(saved, tmp_path, capsys):
    rowid, client_id, status = query(saved, "SELECT rowid, client_id, status FROM orders ORDER BY rowid LIMIT 1")[0]
    assert_named(saved, tmp_path, capsys, "UPDATE orders SET status = 'CANCELED' WHERE rowid = ?", (rowid,),
                 f"orders row {rowid} (session_id 1, client_id {client_id!r}): status is 'CANCELED' in the database, "
                 f"{status!r} when chained")


def test_an_equity_mark_changed_is_named(saved, tmp_path, capsys):
    rowid, ts, equity = query(saved, "SELECT rowid, ts, equity FROM equity ORDER BY ts LIMIT 1 OFFSET 2")[0]
    assert_named(saved, tmp_path, capsys, "UPDATE equity SET equity = equity + 250 WHERE rowid = ?", (rowid,),
                 f"equity row {rowid} (session_id 1, ts {ts}): equity is {equity + 250!r} in the database, "
                 f"{equity!r} when chained")


def test_an_edited_stored_config_is_named_at_the_setting(saved, tmp_path, capsys):
    stored = json.loads(query(saved, "SELECT config_json FROM sessions")[0][0])
    assert stored["strategies"][0]["name"] == "sma_btc" and stored["strategies"][0]["params"]["fast"] == 3
    stored["strategies"][0]["params"]["fast"] = 5
    copy = copy_of(saved, tmp_path, "UPDATE sessions SET config_json = ?", (canonical_json(stored),))
    code, line = verify(capsys, copy)
    assert code == 1 and line.startswith("audit chain BROKEN at sessions row 1 (id 1): config_json.strategies[0]"
                                         ".params.fast is 5 in the database, 3 when chained (audit row 1)"), line
    code, out, _ = cli(capsys, "validate", "--db", str(copy))
    assert code == 1 and out[0].startswith(f"validate refused: {line}") and len(out) == 1
    code, out, _ = cli(capsys, "validate", "--db", str(copy), "--ignore-audit")
    assert out[0].startswith(f"{line}; ignored (--ignore-audit)")  # what validate then makes of the drift is its own


def test_a_removed_audit_row_breaks_the_chain_there(saved, tmp_path, capsys):
    seq = query(saved, "SELECT seq FROM audit ORDER BY seq LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM audit)")[0][0]
    copy = copy_of(saved, tmp_path, "DELETE FROM audit WHERE seq = ?", (seq,))
    code, line = verify(capsys, copy)
    assert code == 1 and line.startswith(f"audit chain BROKEN at row {seq} (") and "rows were deleted" in line, line
    assert_validate_refuses_and_reads_when_told(capsys, copy, line)


def test_the_last_audit_row_removed_leaves_what_it_chained_unchained(saved, tmp_path, capsys):
    copy = copy_of(saved, tmp_path, "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
    code, line = verify(capsys, copy)
    assert code == 1 and line.startswith("audit chain BROKEN at ") and "more difference" in line, line


@pytest.mark.parametrize(("table", "column", "key"), [("strategies", "fingerprint", "name"),
                                                      ("positions", "qty", "symbol"), ("state_events", "detail", "id")])
def test_what_drift_status_and_recovery_read_is_chained_too(saved, tmp_path, capsys, table, column, key):
    rowid, value, was = query(saved, f"SELECT rowid, {key}, {column} FROM {table} ORDER BY rowid LIMIT 1")[0]
    becomes = "x" + was if isinstance(was, str) else was + 1
    where = f"{key} {value!r}" if key == "id" else f"session_id 1, {key} {value!r}"
    # a changed fingerprint is drift too, which validate --ignore-audit then refuses by name: its own test's matter
    assert_named(saved, tmp_path, capsys, f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (becomes, rowid),
                 f"{table} row {rowid} ({where}): {column} is {becomes!r} in the database, {was!r} when chained",
                 reads=column != "fingerprint")


def test_a_row_inserted_without_an_audit_entry_is_named(saved, tmp_path, capsys):
    rowid, fill_id, _ = first_fill(saved)
    added = query(saved, "SELECT MAX(rowid) + 1 FROM fills")[0][0]
    assert_named(saved, tmp_path, capsys, "INSERT INTO fills SELECT session_id, fill_id || '-again', client_id, "
                 "strategy, symbol, side, qty, price, fee, liquidity, ts, basis, depth, latency_ns, mid_at_decision, "
                 "slippage_bps FROM fills WHERE rowid = ?", (rowid,),
                 f"fills row {added} (session_id 1, fill_id '{fill_id}-again'): in the database but not in the audit "
                 "chain (added without an audit entry)")


def test_market_data_changed_or_deleted_is_found_in_its_range(saved, tmp_path, capsys):
    seq = query(saved, "SELECT seq FROM market_data WHERE kind = 'trade' ORDER BY seq LIMIT 1 OFFSET 40")[0][0]
    copy = copy_of(saved, tmp_path, "UPDATE market_data SET price = price + 0.01 WHERE seq = ?", (seq,))
    code, line = verify(capsys, copy)
    assert code == 1 and line.startswith("audit chain BROKEN at market_data seq ") and "a row differs" in line, line
    first, last = map(int, line.split("market_data seq ")[1].split(" (")[0].split(" to "))
    assert first <= seq <= last
    copy = copy_of(saved, tmp_path, "DELETE FROM market_data WHERE seq = ?", (seq,))
    code, line = verify(capsys, copy)
    assert code == 1 and f"seq {seq} was deleted" in line, line


def test_report_and_evaluate_refuse_a_broken_chain_unless_told(saved, tmp_path, capsys):
    rowid, _, _ = first_fill(saved)
    copy = copy_of(saved, tmp_path, "UPDATE fills SET qty = qty * 2 WHERE rowid = ?", (rowid,))
    _, broken = verify(capsys, copy)
    for command in (["report"], ["evaluate", "--strategy", "sma_btc"]):
        code, out, _ = cli(capsys, *command, "--db", str(copy))
        assert code == 1 and out == [f"{command[0]} refused: {broken}. Nothing was read past the audit check; pass "
                                     f"--ignore-audit to {command[0]} it anyway"]
        code, out, _ = cli(capsys, *command, "--db", str(copy), "--ignore-audit")
        assert out[0].startswith(f"{broken}; ignored") and len(out) > 3
    code, out, err = cli(capsys, "report", "--db", str(copy), "--ignore-audit", "--format", "json")
    assert out[0] == "{" and err.startswith(f"{broken}; ignored")  # JSON on standard output stays JSON


async def test_market_data_a_feed_gave_as_whole_numbers_verifies(tmp_path, capsys):
    """Market data is chained as written, not read back: a price a feed gave as an int, or a negative zero, is
    written as SQLite stores it (a float, no negative zero), or verify would see a change where there is none."""
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, CONFIG, steps=50, close=False)
    try:
        ts = session.clock.now_ns()
        session.journal.market(TradeTick(ts, "BTC/USDT", 60_000, 2, OrderSide.BUY))
        session.journal.market(Bar(ts, "ETH/USDT", "1m", 3000, 3001, 2999, 3000, -0.0, ts + 60_000_000_000))
        assert await session.writer.flush()
    finally:
        await session.close()
    assert query(db, "SELECT price, size FROM market_data WHERE kind = 'trade' ORDER BY seq DESC LIMIT 1") == \
        [(60000.0, 2.0)]
    code, line = verify(capsys, db)
    assert code == 0, line


async def test_the_behaviour_series_is_saved_chained_and_read_back(tmp_path, capsys):
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, CONFIG, steps=600, close=False)
    try:
        assert await session.writer.flush()
        await session._score()  # the live score, computed by its child process as the running session does
        await session._score()
        assert await session.writer.flush()
    finally:
        await session.close()
    live = session.live
    assert live is not None and live["score"] is not None
    points = behaviour_history(db, 1)
    assert len(points) == 2 and points == behaviour_history(sqlite3.connect(db), 1)
    assert behaviour_history(db, 1, limit=1) == points[-1:]  # the newest, for the console's bounded trends
    assert points[-1] == {"market_ts": live["market_ts"], "score": live["score"], **live["components"],
                          "unexplained": live["unexplained"]}
    own = live["strategies"]["sma_btc"]  # and each strategy's own points beside the portfolio's (strategy NULL)
    assert behaviour_history(db, 1, "sma_btc")[-1] == {"market_ts": live["market_ts"], "score": own["score"],
                                                       **own["components"], "unexplained": own["unexplained"]}
    assert query(db, "SELECT strategy FROM behaviour_series WHERE id = 2") == [("sma_btc",)]  # tampered below
    code, line = verify(capsys, db)
    assert code == 0, line
    copy = copy_of(db, tmp_path, "UPDATE behaviour_series SET score = score - 10 WHERE id = 2")
    code, line = verify(capsys, copy)
    assert code == 1 and line.startswith("audit chain BROKEN at behaviour_series row 2 (id 2): score is "), line


async def test_a_database_from_before_every_row_was_chained_opens_and_verifies(tmp_path, capsys):
    db = tmp_path / "desk.sqlite"
    await stepped_session(db, CONFIG, steps=300)
    # what schema 5 left: no series, no chained rows (its chain held events only), a live score in behaviour_scores
    with sqlite3.connect(db) as conn:
        conn.executescript("DROP TABLE behaviour_series; DROP TABLE audit_legacy; DELETE FROM audit; "
                           "PRAGMA user_version = 5; INSERT INTO behaviour_scores VALUES (1, 1, 2, 3, 97.5, "
                           "'{\"components\": {\"signal_agreement\": 90.0, \"timing\": 99.5, \"count_ratio\": 100.0, "
                           "\"matched_share\": 98.0}, \"unexplained\": 2}')")
    conn.close()
    code, line = verify(capsys, db)
    assert code == 0 and "session 1 began before every row was chained" in line, line
    await stepped_session(db, CONFIG, steps=100)  # resumes it: the schema is upgraded, new rows are chained
    assert query(db, "PRAGMA user_version")[0][0] == 6
    assert behaviour_history(db, 1) == [{"market_ts": 2, "score": 97.5, "signal_agreement": 90.0, "timing": 99.5,
                                         "count_ratio": 100.0, "matched_share": 98.0, "unexplained": 2}]
    report = verify_chain(sqlite3.connect(db))
    assert report.intact and report.legacy == (1,), report.line()
    last = query(db, "SELECT MAX(rowid) FROM equity")[0][0]  # marked after the upgrade: chained
    copy = copy_of(db, tmp_path, "UPDATE equity SET cash = cash - 1 WHERE rowid = ?", (last,))
    code, line = verify(capsys, copy)
    assert code == 1 and f"equity row {last} " in line and "cash is " in line, line
