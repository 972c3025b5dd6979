"""`paperdesk status | sessions | export | audit verify`: the database, read while a session writes; the audit check
before validate, evaluate and report.

Plain text for people, --json for machines. Never imports textual; never writes to the database.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TextIO

from engine.clock import utc_text
from engine.snapshot import VenueHealth
from engine.store.audit import ChainReport, verify_chain
from engine.store.read import export_chunks, open_reader, parquet_schema, pick_session, reads_store, sessions, status


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return utc_text(ns)


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


@reads_store
def print_status(db: Path, session_id: int | None, as_json: bool, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out  # looked up per call: a caller may have replaced sys.stdout
    conn = open_reader(db)
    try:
        view = status(conn, db, session_id)
    finally:
        conn.close()
    if as_json:
        print(json.dumps(view, indent=2), file=out)
        return 0
    s = view["session"]
    pnl = None if s["equity"] is None else s["equity"] - s["starting_cash"]
    lines = [
        f"session {s['id']}: {view['state']}" + (f" (pid {s['pid']})" if view["running"] else "")
        + f", restarts {s['restarts']}, config {s['config_hash'][:12]}",
        f"  market time {_time(s['market_ts'])}  equity {_num(s['equity'])}  P&L {_num(pnl, '+.2f')}  "
        f"cash {_num(s['cash'])}  fees {_num(s['fees'])}",
        f"  saved {s['rows_committed']} rows this run, backlog {s['writer_backlog']}, back-pressure waits "
        f"{s['writer_waits']}; last mark saved {_num(view['saved_seconds_ago'], '.1f')} s ago",
        "  counts: " + " ".join(f"{k}={v}" for k, v in view["counts"].items()),
        *venue_lines(view["venue"]),
        "positions:" if view["positions"] else "positions: flat",
    ]
    lines += [f"  {p['symbol']:<10} {p['qty']:+.6g} @ {p['avg_price']:.2f}  mark {p['mark']:.2f}  "
              f"unrealised {p['unrealised']:+.2f}" for p in view["positions"]]
    lines.append("open orders:" if view["open_orders"] else "open orders: none")
    lines += [f"  {o['client_id']} {o['strategy']} {o['side']} {o['type']} {o['qty']:g}"
              + (f" @ {o['price']:g}" if o["price"] is not None else "")
              + f" {o['status']} filled {o['filled_qty']:g}" for o in view["open_orders"]]
    lines.append("last fills:" if view["last_fills"] else "last fills: none")
    lines += [f"  {_time(f['ts'])} {f['fill_id']} {f['strategy']} {f['side']} {f['qty']:g} {f['symbol']} "
              f"@ {f['price']:g} fee {f['fee']:.4f} slip {f['slippage_bps']:+.1f}bp" for f in view["last_fills"]]
    lines.append("strategies: " + (", ".join(f"{x['name']} {x['status']}" + (f" ({x['error']})" if x["error"] else "")
                                             for x in view["strategies"]) or "none"))
    lines += risk_lines(view)
    lines += behaviour_lines(view["behaviour"])
    lines += [f"  event {_time(e['wall_ns'])} {e['kind']}: {e['detail']}" for e in view["events"]]
    print("\n".join(lines), file=out)
    return 0


def venue_lines(venue: dict[str, Any] | None) -> list[str]:
    """The venue's health as the session last saved it (with its risk view, every equity mark)."""
    if venue is None:
        return ["venue: not recorded"]
    saved = dict(venue)
    ago = saved.pop("measured_seconds_ago")
    lines = VenueHealth.from_json(saved).lines()
    if not saved["simulated"]:
        lines[0] += f"; measured {ago:.1f} s ago"
    return lines


def behaviour_lines(scores: list[dict[str, Any]]) -> list[str]:
    """The live behaviour score and its trend (`paperdesk validate` gives the full report)."""
    scored = [r for r in scores if r["score"] is not None]
    if not scored:
        note = scores[-1]["summary"].get("note", "") if scores else "not computed yet"
        return [f"behaviour vs backtest: no score yet ({note})"]
    last = scored[-1]
    summary = last["summary"]
    trend = " -> ".join(f"{r['score']:.2f}" for r in scored[-6:])
    return [f"behaviour vs backtest: {last['score']:.2f}/100 at market {_time(last['market_ts'])}, "
            f"{summary.get('differences', 0)} differences ({summary.get('unexplained', 0)} unexplained); "
            f"trend {trend}"]


def _left(until: int | None, now: int | None) -> str:
    if until is None:
        return ""
    if now is None:
        return f" until {_time(until)}"
    minutes = max(0, until - now) / 60e9
    return f" until {_time(until)} ({int(minutes // 60)}h{int(minutes % 60):02d}m left, market time)"


def risk_lines(view: dict[str, Any]) -> list[str]:
    """Trading state with its cause and time left, breaker gauges (warnings first), operator commands."""
    risk = view.get("risk")
    if risk is None:
        return ["trading: no risk state recorded yet"]
    now = risk.get("market_ts")
    scopes = {s["scope"]: s for s in risk["scopes"]}
    portfolio = scopes.pop("portfolio", None)
    if portfolio is None:
        lines = ["trading: ACTIVE"]
    else:
        lines = [f"trading: {portfolio['state']} ({portfolio['source']}: {portfolio['cause']})"
                 + _left(portfolio["until"], now)]
    lines += [f"  strategy {name}: {s['state']} ({s['source']}: {s['cause']})" + _left(s["until"], now)
              for name, s in sorted(scopes.items())]
    if risk.get("flattening"):
        lines.append(f"  closing {risk['flattening']} position(s) at market")
    gauges = sorted(risk["gauges"], key=lambda g: -g["usage"])
    if gauges:
        lines.append("breakers (distance to trip):")
        lines += [f"  {'WARN ' if g['warn'] else '     '}{g['breaker']:<19} {g['scope']:<10} "
                  f"{g['usage']:>6.0%} of limit  {g['detail']}" for g in gauges]
    if risk.get("phases"):
        lines.append("risk phases: " + ", ".join(f"{s} {p}" for s, p in sorted(risk["phases"].items())))
    lines += [f"  command {c['id']} {c['command']} queued {_time(c['wall_ns'])}, not applied yet"
              for c in view.get("pending_commands", [])]
    lines += [f"  command {c['id']} {c['command']} {'applied' if c['ok'] else 'REFUSED'}: {c['result']}"
              for c in view.get("commands", [])[:3]]
    return lines


@reads_store
def print_sessions(db: Path, as_json: bool, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out  # looked up per call: a caller may have replaced sys.stdout
    conn = open_reader(db)
    try:
        rows = sessions(conn, db)
    finally:
        conn.close()
    if as_json:
        print(json.dumps(rows, indent=2), file=out)
        return 0
    print(f"{'id':>4}  {'status':<11} {'started (UTC)':<19}  {'ended (UTC)':<19}  {'restarts':>8}  {'config':<12}  "
          f"{'start cash':>12}  {'equity':>12}  {'P&L':>10}", file=out)
    for r in rows:
        print(f"{r['id']:>4}  {r['status']:<11} {_time(r['started_wall_ns']):<19}  {_time(r['ended_wall_ns']):<19}  "
              f"{r['restarts']:>8}  {r['config_hash'][:12]:<12}  {r['starting_cash']:>12.2f}  "
              f"{_num(r['equity']):>12}  {_num(r['pnl'], '+.2f'):>10}", file=out)
    return 0


@reads_store
def export(db: Path, what: str, fmt: str, session_id: int | None, out_path: Path | None,
           out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out  # looked up per call: a caller may have replaced sys.stdout
    conn = open_reader(db)
    try:
        sid = pick_session(conn, session_id)
        chunks = export_chunks(conn, what, sid)
        rows = 0
        if fmt == "parquet":
            assert out_path is not None
            schema = parquet_schema(conn, what)

            def write_parquet(handle: IO[Any]) -> None:
                nonlocal rows
                import pyarrow as pa
                import pyarrow.parquet as pq

                # chunk by chunk with the table's declared types, so a chunk of empty columns cannot change them
                with pq.ParquetWriter(handle, schema) as writer:
                    for chunk in chunks:
                        writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
                        rows += len(chunk)

            write_new(out_path, write_parquet, binary=True)
        else:

            def write_csv(handle: IO[Any]) -> None:
                nonlocal rows
                for index, chunk in enumerate(chunks):
                    chunk.to_csv(handle, index=False, header=index == 0)
                    rows += len(chunk)

            if out_path is None:
                write_csv(out)
            else:
                write_new(out_path, write_csv, binary=False)
    finally:
        conn.close()
    if out_path is not None:
        print(f"exported {rows} {what} rows of session {sid} to {out_path}", file=sys.stderr)
    return 0


def write_new(path: Path, write: Callable[[IO[Any]], object], binary: bool) -> None:
    """Write through a temporary name and rename, so a failed export leaves no half file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")  # this process's own: one a kill left cannot block it
    try:
        with open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8", newline="") as handle:
            write(handle)
        tmp.rename(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _chain(db: Path) -> ChainReport:
    conn = open_reader(db)
    try:
        return verify_chain(conn)
    finally:
        conn.close()


@reads_store
def verify_audit(db: Path, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out  # looked up per call: a caller may have replaced sys.stdout
    report = _chain(db)
    print(report.line(), file=out)
    return 0 if report.intact else 1


@reads_store
def refuse_broken_chain(db: Path, command: str, ignore: bool, out: TextIO) -> bool:
    """Before `command` (validate, evaluate, report) reads db: True, refused and said on the first line, when its audit
    chain is broken; with ignore, the first line says it is broken and ignored, and the command goes on."""
    report = _chain(db)
    if report.intact:
        return False
    if ignore:
        print(f"{report.line()}; ignored (--ignore-audit): what follows reads rows that may have been altered",
              file=out)
        return False
    print(f"{command} refused: {report.line()}. Nothing was read past the audit check; pass --ignore-audit to "
          f"{command} it anyway", file=out)
    return True
