"""Detail on Enter: an order, a strategy or a breaker, read from the session's database off the event loop.

DeskScreen is the frame every console screen over a desk shares (the behaviour and journal screens too): escape
closes it, `read` runs a reader in a thread (a validation in a child process) and shows its result or its one-line
error, and a session that is not saved says so and shows what the desk's snapshot holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from console.desk import Desk
from console.desk_reads import (
    BreakerDetail,
    DecisionRow,
    FillRow,
    OrderDetail,
    StrategyDetail,
    breaker_detail,
    in_child,
    order_detail,
    strategy_detail,
)
from console.widgets.cells import cell_width
from engine.clock import utc_text
from engine.snapshot import EngineSnapshot, StrategyView
from engine.store.database import StoreError

T = TypeVar("T")
NOT_SAVED = "This session is not saved (it runs without a database): showing only what the running engine holds now."


def market_time(ns: int | None) -> str:
    return "-" if ns is None else utc_text(ns)


def indicators_text(indicators: dict[str, float]) -> str:
    return "  ".join(f"{name}={value:.6g}" if isinstance(value, int | float) else f"{name}={value}"
                     for name, value in indicators.items()) or "none"


def fields(title: str, rows: Iterable[tuple[str, Any]]) -> Text:
    """A titled block of `name  value` lines, the values lined up."""
    rows = list(rows)
    width = max((len(name) for name, _ in rows), default=0) + 2
    text = Text(f"{title}\n", style="bold underline")
    for name, value in rows:
        text.append(f"  {name:<{width}}", style="bold")
        text.append(f"{value}\n")
    return text


def decision_rows(d: DecisionRow) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("decision", f"#{d.seq} {d.signal} {d.symbol} at {market_time(d.ts)} (confidence {d.confidence:.2f})"),
        ("reason", d.reason or "-"), ("indicators", indicators_text(d.indicators))]
    if d.target is not None:
        rows.append(("target", f"{d.target:g}"))
    if d.denied_rule is not None:
        rows.append(("refused", d.refusal()))
    return rows


class DeskScreen(ModalScreen[None]):
    """A screen over a desk: loads off the event loop, escape closes it."""

    BINDINGS = [Binding("escape", "close", "Close")]
    SCROLLS = True  # the frame scrolls; a screen whose one big table scrolls itself says False
    DEFAULT_CSS = """
    DeskScreen { align: center middle; }
    DeskScreen > #frame { width: 96%; height: 94%; border: round $primary; background: $surface; padding: 0 1; }
    DeskScreen DataTable { height: auto; max-height: 20; border: round $secondary; }
    DeskScreen #message { color: $warning; }
    """

    def __init__(self, desk: Desk) -> None:
        super().__init__()
        self.desk = desk

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="frame") if self.SCROLLS else Vertical(id="frame"):
            yield Static(id="message", markup=False)
            yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def action_close(self) -> None:
        self.dismiss()

    @property
    def saved(self) -> bool:
        return self.desk.db_path is not None and self.desk.session_id is not None

    def say(self, text: str) -> None:
        self.query_one("#message", Static).update(text)

    def read(self, reader: Callable[..., T], *args: Any, then: Callable[[T], None],
             otherwise: Callable[[str], None] | None = None, group: str = "read", child: bool = False) -> Worker[None]:
        """reader(db_path, session_id, *args) in a thread (child: in a child process, for a validation's replay);
        then(its result) back on the event loop, or its error given to otherwise (default: said on the screen): a
        damaged or busy database, a session that cannot be validated."""
        path, session_id = self.desk.db_path, self.desk.session_id
        assert path is not None and session_id is not None
        call = in_child if child else asyncio.to_thread

        async def work() -> None:
            try:
                result = await call(reader, path, session_id, *args)
            except StoreError as exc:
                (otherwise or self.failed)(str(exc))
                return
            then(result)

        return self.run_worker(work(), group=group, exclusive=True, exit_on_error=False)

    def failed(self, text: str) -> None:
        self.say(text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:  # a bug, not bad data: said here rather than closing the console
            error = event.worker.error
            self.failed(f"could not read the session: {type(error).__name__}: {error}")


def table(id: str, title: str, *columns: str) -> DataTable:
    out: DataTable = DataTable(id=id, cursor_type="row", zebra_stripes=True)
    out.border_title = title
    for column in columns:
        out.add_column(column, key=column)
    return out


def fill(out: DataTable, rows: Iterable[Sequence[object]], keys: Iterable[str] | None = None) -> None:
    """Replace the table's rows, its columns sized to what they now hold before anything is drawn. Left to
    Textual, columns are sized when the app is next idle, and a header drawn before that kept its old widths above
    rows drawn after (seen in a screenshot under load). Text is shown as given, never parsed as markup."""
    cells = [[Text(c) if isinstance(c, str) else c for c in row] for row in rows]
    out.clear()
    for row, key in zip(cells, keys if keys is not None else [None] * len(cells), strict=True):
        out.add_row(*row, key=key)
    for i, column in enumerate(out.ordered_columns):
        column.width = max([column.label.cell_len, *(cell_width(row[i]) for row in cells)])
        column.auto_width = False


# ---- an order --------------------------------------------------------------------------------------------------

def order_line(type_: str, side: str, qty: float, symbol: str, price: float | None, stop: float | None) -> str:
    return (f"{type_} {side} {qty:g} {symbol}" + (f" limit {price:g}" if price is not None else "")
            + (f" stop {stop:g}" if stop is not None else ""))


def fill_cells(f: FillRow) -> tuple[str, ...]:
    return (market_time(f.ts), f.fill_id, f"{f.qty:g}", f"{f.price:,.6g}", f"{f.fee:.4f}", f.liquidity, f.basis,
            f"{f.depth:g}", f"{f.slippage_bps:+.2f}", f"{f.latency_ns / 1e6:g}", f"{f.mid_at_decision:,.6g}")


class OrderDetailScreen(DeskScreen):
    """An order, the decision that made it, its state history and its fills with the simulator's assumptions."""

    def __init__(self, desk: Desk, client_id: str) -> None:
        super().__init__(desk)
        self.client_id = client_id

    def body(self) -> ComposeResult:
        yield Static(f"Order {self.client_id}: loading...", id="order", markup=False)
        yield table("states", "State history (market time)", "time", "status", "filled", "reason")
        yield table("fills", "Fills and what the fill simulator assumed", "time", "fill", "qty", "price", "fee",
                    "liquidity", "basis", "depth", "slip bps", "latency ms", "mid at decision")

    def on_mount(self) -> None:
        if self.saved:
            self.read(order_detail, self.client_id, then=self.show)
        else:
            self.show_snapshot(self.desk.snapshot())

    def show(self, o: OrderDetail) -> None:
        rows: list[tuple[str, Any]] = [
            ("order", order_line(o.type, o.side, o.qty, o.symbol, o.price, o.stop_price)),
            ("time in force", o.tif + (", reduce only" if o.reduce_only else "")),
            ("strategy", o.strategy), ("created", market_time(o.created_ns)),
            ("status", o.status + (f" ({o.reason})" if o.reason else "")),
            ("filled", f"{o.filled_qty:g} of {o.qty:g}"
             + (f" at {o.avg_fill_price:g} average" if o.filled_qty else "")),
            ("origin", self._origin(o.made_by)),
        ]
        text = fields(f"Order {o.client_id}", rows)
        if o.decision is not None:
            text.append_text(fields("The decision that made it", decision_rows(o.decision)))
        self.query_one("#order", Static).update(text)
        fill(self.query_one("#states", DataTable),
             [(market_time(s.ts), s.status, f"{s.filled_qty:g}", s.reason) for s in o.states])
        fill(self.query_one("#fills", DataTable), [fill_cells(f) for f in o.fills])
        if not o.fills:
            self.say("No fills.")

    def _origin(self, made_by: str) -> str:
        """The open order's origin as the engine holds it (strategy, exit, flatten), with what made it."""
        view = next((v for v in self.desk.snapshot().open_order_list if v.client_id == self.client_id), None)
        return made_by if view is None else f"{view.origin}: {made_by}"

    def show_snapshot(self, snap: EngineSnapshot) -> None:
        view = next((v for v in snap.open_order_list if v.client_id == self.client_id), None)
        message = NOT_SAVED
        if view is not None:
            rows: list[tuple[str, Any]] = [
                ("order", order_line(view.type, view.side, view.qty, view.symbol, view.price, view.stop_price)),
                ("strategy", view.strategy), ("created", market_time(view.created_ns)),
                ("status", view.status), ("filled", f"{view.filled:g} of {view.qty:g}"),
                ("origin", view.origin + (f" ({view.reason})" if view.reason else ""))]
            self.query_one("#order", Static).update(fields(f"Order {self.client_id}", rows))
        else:
            self.query_one("#order", Static).update(f"Order {self.client_id}")
            message += " The order is no longer open; its lines in the event log and recent fills follow."
        self.say(message)
        fill(self.query_one("#states", DataTable), [(market_time(line.ts), line.text, "", "") for line in snap.event_log
                                                     if self.client_id in line.text and line.kind == "order"])
        fill(self.query_one("#fills", DataTable),
             [fill_cells(FillRow.of(f)) for f in snap.recent_fills if f.client_id == self.client_id])


# ---- a strategy ------------------------------------------------------------------------------------------------

class StrategyDetailScreen(DeskScreen):
    """A strategy: its config as the session ran it, its state now, its last decision and its round trips."""

    def __init__(self, desk: Desk, name: str) -> None:
        super().__init__(desk)
        self.name_shown = name

    def body(self) -> ComposeResult:
        yield Static(f"Strategy {self.name_shown}", id="now", markup=False)
        yield Static("loading...", id="strategy", markup=False)
        yield table("trades", "Round trips (closed trades, newest first; P&L net of fees)", "closed", "symbol",
                    "side", "P&L")

    def on_mount(self) -> None:
        self.query_one("#now", Static).update(self._now(self.desk.snapshot()))
        if self.saved:
            self.read(strategy_detail, self.name_shown, then=self.show)
        else:
            self.say(NOT_SAVED)
            self.query_one("#strategy", Static).update("")

    def _now(self, snap: EngineSnapshot) -> Text:
        view: StrategyView | None = next((s for s in snap.strategies if s.name == self.name_shown), None)
        if view is None:
            return fields(f"Strategy {self.name_shown}", [("now", "not running in this engine")])
        rate = "-" if view.win_rate is None else f"{view.win_rate:.0%}"
        rows: list[tuple[str, Any]] = [
            ("kind", view.kind), ("code", view.status + (f": {view.error}" if view.error else "")),
            ("trading state", view.state), ("phase", "-" if view.phase is None else view.phase),
            ("P&L (marked)", f"{view.pnl:+,.2f}"), ("trades", f"{view.trades} ({view.wins} won, win rate {rate})"),
            ("positions", ", ".join(f"{symbol} {qty:+g}" for symbol, qty in view.positions) or "flat")]
        return fields(f"Strategy {self.name_shown} now", rows)

    def show(self, s: StrategyDetail) -> None:
        m = s.metrics
        text = fields("As the session runs it", [
            ("kind", s.kind), ("symbols", ", ".join(s.symbols)),
            ("timeframes", ", ".join(s.timeframes) + " (decides on the first)"),
            ("parameters", "  ".join(f"{k}={v}" for k, v in s.params.items()) or "none"),
            *((name, _setting(value)) for name, value in s.settings.items()),
            ("decisions", s.decisions),
            ("round trips", f"{m.trades}: {m.wins} won, {m.losses} lost"
             + ("" if not m.trades else f", win rate {m.win_rate:.0%}, expectancy {m.expectancy:+,.2f}, "
                f"profit factor {m.profit_factor:.2f}, closed P&L {sum(t.pnl for t in s.trades):+,.2f}")),
        ])
        if s.last_decision is not None:
            text.append_text(fields("Last decision (latest indicators)", decision_rows(s.last_decision)))
        self.query_one("#strategy", Static).update(text)
        fill(self.query_one("#trades", DataTable), [
            (market_time(t.closed_ts), t.symbol, t.side,
             Text(f"{t.pnl:+,.2f}", style="green" if t.pnl > 0 else "red" if t.pnl < 0 else ""))
            for t in reversed(s.trades)])


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return "  ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "none set"
    return "-" if value is None else str(value)


# ---- a breaker -------------------------------------------------------------------------------------------------

class BreakerDetailScreen(DeskScreen):
    """A circuit breaker: its gauge now, its configuration, and every trip and state change it caused."""

    def __init__(self, desk: Desk, breaker: str, scope: str) -> None:
        super().__init__(desk)
        self.breaker, self.scope = breaker, scope

    def body(self) -> ComposeResult:
        yield Static(f"Breaker {self.breaker} ({self.scope})", id="gauge", markup=False)
        yield Static("", id="settings", markup=False)
        yield table("trips", "Trips and the states it set or lifted (market time)", "time", "scope", "state",
                    "detail")

    def on_mount(self) -> None:
        snap = self.desk.snapshot()
        self.query_one("#gauge", Static).update(self._gauge(snap))
        if self.saved:
            self.read(breaker_detail, self.breaker, self.scope, then=self.show)
            return
        self.say(NOT_SAVED + " Its trips in the event log follow.")
        fill(self.query_one("#trips", DataTable), [(market_time(line.ts), "", line.level, line.text)
                                                    for line in snap.event_log if f"({self.breaker}: " in line.text])

    def _gauge(self, snap: EngineSnapshot) -> Text:
        risk = snap.risk
        gauge = next((g for g in risk.get("gauges", ()) if g["breaker"] == self.breaker and g["scope"] == self.scope),
                     None)
        title = f"Breaker {self.breaker} on {self.scope}"
        if gauge is None:
            return fields(title, [("gauge", "not measured now (switched off, or nothing to measure yet)")])
        rows: list[tuple[str, Any]] = [
            ("value", f"{gauge['value']:.6g}"), ("limit", f"{gauge['limit']:.6g}"),
            ("usage", f"{gauge['usage']:.0%}" + (" (warning)" if gauge["warn"] else "")
             + (" TRIPPED" if gauge["usage"] >= 1 else "")),
            ("detail", gauge["detail"])]
        for scope in risk.get("scopes", ()):
            if scope["source"] == self.breaker and scope["scope"] == self.scope:
                left = "" if scope["until"] is None else f" until {market_time(scope['until'])}"
                rows.append(("in force", f"{scope['scope']} {scope['state']} since {market_time(scope['since'])}"
                                         f"{left}: {scope['cause']}"))
        rows.append(("trips (all breakers)", risk.get("trips", 0)))
        return fields(title, rows)

    def show(self, b: BreakerDetail) -> None:
        self.query_one("#settings", Static).update(fields("Configuration ([breakers] as the session runs)", [
            (name, "off" if value is None else value) for name, value in b.settings.items()]))
        fill(self.query_one("#trips", DataTable),
             [(market_time(e.market_ts), e.scope, e.kind, e.detail) for e in b.events])
        if not b.events:
            self.say(f"{b.breaker} has not tripped in this session.")
