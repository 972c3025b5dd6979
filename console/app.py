"""The operator console: live equity, positions, strategies and fills over one paper session.

It reads snapshots at a fixed rate and never computes trading state itself.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.theme import Theme
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from console.commands_palette import TradingCommands
from console.headless import stop_signals
from console.screens.help import HelpScreen
from engine.config import AppConfig
from engine.session import PaperSession
from engine.snapshot import EngineSnapshot

if TYPE_CHECKING:
    from console.cli import StopSignals

THEMES = Path(__file__).resolve().parent / "themes"  # package data: in a checkout, a link to the repo's themes/
MAX_FILL_ROWS = 200
THEME_VARIABLE = "PAPERDESK_THEME"
DEFAULT_THEME = "textual-dark"
EMERGENCY_LABEL = "!! EMERGENCY STOPPED !!"  # words and a marker: under NO_COLOR the colour says nothing

# Pure black and white with saturated accents, for low-vision use and washed-out projectors.
HIGH_CONTRAST = Theme(
    name="paperdesk-high-contrast",
    primary="#FFFF00",
    secondary="#00FFFF",
    accent="#FF00FF",
    warning="#FFA500",
    error="#FF3030",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#101010",
    dark=True,
    text_alpha=1.0,
)


def _num(value: float, decimals: int = 2, signed: bool = False) -> Text:
    """Right-aligned number as Text, so cells are never parsed as markup."""
    return Text(f"{value:+,.{decimals}f}" if signed else f"{value:,.{decimals}f}", justify="right")


class PaperdeskApp(App[int]):
    """Watches a PaperSession; q quits (and stops the session); h/p/r halt, pause, resume; ! twice emergency-stops;
    ? or F1 lists the keys.

    The trading keys are App-level priority bindings, so no focused widget can swallow them; they
    go through the session like a command from another shell (saved, audited, replayed on restart).
    The command palette offers the same actions through the same bindings.
    """

    CSS_PATH = THEMES / "paperdesk.tcss"
    TITLE = "paperdesk"
    COMMANDS = App.COMMANDS | {TradingCommands}
    BINDINGS = [
        Binding("h", "operator('halt')", "Halt", priority=True),
        Binding("p", "operator('pause')", "Pause", priority=True),
        Binding("r", "operator('resume')", "Resume", priority=True),
        Binding("exclamation_mark", "emergency_stop", "Emergency stop (press twice)", priority=True,
                id="emergency-stop"),
        Binding("question_mark,f1", "help", "Help (keys)"),
        Binding("q", "quit_session", "Quit", priority=True),
    ]
    REFRESH_SECONDS = 0.5
    CHART_SECONDS = 1.0
    CONFIRM_SECONDS = 3.0

    def __init__(self, session: PaperSession) -> None:
        super().__init__()
        self.session = session
        self._fill_keys: list[str] = []
        self._snapshot: EngineSnapshot | None = None  # the last one refresh_view took; the chart reuses it
        self._armed: dict[str, float] = {}  # action -> when its first press was, for press-twice confirmation
        self._source = f"console {getpass.getuser()}"
        self.register_theme(HIGH_CONTRAST)
        self._start_theme = os.environ.get(THEME_VARIABLE) or DEFAULT_THEME

    def key_bindings(self) -> list[Binding]:
        """Every key the app answers to: Textual's own first, then these BINDINGS, then the palette's."""
        return [binding for _key, binding in self._bindings]

    def compose(self) -> ComposeResult:
        yield Static(id="status", markup=False)
        with Horizontal(id="top"):
            yield DataTable(id="positions", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="strategies", cursor_type="row")
        with Horizontal(id="middle"):
            yield DataTable(id="fills", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="breakers", cursor_type="row")
        yield PlotextPlot(id="equity")
        yield Footer()

    def on_mount(self) -> None:
        if self._start_theme in self.available_themes:
            self.theme = self._start_theme
        else:
            self.theme = DEFAULT_THEME
            self.notify(f"{THEME_VARIABLE}={self._start_theme}: no such theme; using {DEFAULT_THEME}",
                        severity="warning", timeout=10)
        positions = self.query_one("#positions", DataTable)
        positions.border_title = "Positions"
        positions.add_columns("symbol", "qty", "avg price", "mark", "unrealised", "realised")
        strategies = self.query_one("#strategies", DataTable)
        strategies.border_title = "Strategies"
        strategies.add_columns("name", "kind", "status")
        fills = self.query_one("#fills", DataTable)
        fills.border_title = "Fills (newest last)"
        fills.add_columns("time", "strategy", "symbol", "side", "qty", "price", "fee", "liq", "basis",
                          "depth", "slip bps")
        breakers = self.query_one("#breakers", DataTable)
        breakers.border_title = "Breakers (distance to trip)"
        breakers.add_columns("breaker", "scope", "used", "detail")
        self.query_one("#equity", PlotextPlot).border_title = "Equity"
        self.refresh_view()
        self.set_interval(self.REFRESH_SECONDS, self.refresh_view)
        self.set_interval(self.CHART_SECONDS, self.refresh_chart)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_bindings()))

    def action_quit_session(self) -> None:
        self.session.stop("operator pressed q")
        self.exit(0)

    def _confirmed(self, action: str, prompt: str) -> bool:
        """True on the second press within CONFIRM_SECONDS; the first only asks."""
        now = time.monotonic()
        if now - self._armed.pop(action, -1e9) <= self.CONFIRM_SECONDS:
            return True
        self._armed[action] = now
        self.notify(prompt, severity="warning", timeout=self.CONFIRM_SECONDS)
        return False

    def action_operator(self, command: str) -> None:
        reason = f"{command} key in the console"
        if command == "resume" and self.session.engine.guard.states.state("portfolio").value == "EMERGENCY_STOPPED":
            if not self._confirmed("resume", "EMERGENCY STOPPED: press r again within 3 s to resume trading"):
                return
            reason = "resumed from the console after an emergency stop"
        self._run_command(command, reason)

    def action_emergency_stop(self) -> None:
        if self._confirmed("emergency-stop", "press ! again within 3 s to EMERGENCY STOP: cancel every order, "
                                             "close every position"):
            self._run_command("emergency-stop", "emergency-stop key in the console")

    def _run_command(self, command: str, reason: str) -> None:
        ok, result = self.session.operator_command(command, {}, reason, self._source)
        self.notify(result, severity="information" if ok else "error", timeout=6)
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self._showing():
            return
        snap = self._snapshot = self.session.snapshot()
        self._show_status(snap)
        self._show_positions(snap)
        self._show_strategies(snap)
        self._show_fills(snap)
        self._show_breakers(snap)

    def _showing(self) -> bool:
        """The tables are there to fill: a refresh timer can still tick while the app exits and they are removed."""
        return self.is_running and bool(self.default_screen.query("#status"))

    def _show_breakers(self, snap: EngineSnapshot) -> None:
        table = self.query_one("#breakers", DataTable)
        for g in snap.risk.get("gauges", ()):
            style = "bold red" if g["usage"] >= 1 else "yellow" if g["warn"] else ""
            cells = (g["breaker"], g["scope"], Text(f"{g['usage']:.0%}", style=style, justify="right"), g["detail"])
            self._upsert(table, f"{g['breaker']}:{g['scope']}", cells)

    def _show_status(self, snap: EngineSnapshot) -> None:
        venue = self.session.config.venue
        pnl = snap.equity - snap.starting_cash
        failed = [s.name for s in snap.strategies if s.status != "RUNNING"]
        health = snap.venue if snap.venue is not None and not snap.venue.simulated else None
        if health is None:
            line1 = (f"simulated venue  speed {venue.speed:g}x  latency {venue.latency_ms:g} ms  "
                     f"limit fills: {venue.limit_fill.value}")
        elif self.session.engine.broker.capabilities.simulated:
            line1 = f"fills simulated on the exchange's book  limit fills: {venue.limit_fill.value}"
        else:
            line1 = "orders filled by the exchange"
        line2 = (f"equity {snap.equity:,.2f}  P&L {pnl:+,.2f}  cash {snap.cash:,.2f}  fees {snap.fees:,.2f}  "
                 f"orders {snap.orders} (open {snap.open_orders})  fills {snap.fills}  decisions {snap.decisions}")
        if failed:
            line2 += f"  FAILED: {', '.join(failed)}"
        risk = snap.risk
        state = snap.trading_state
        emergency = state == "EMERGENCY_STOPPED"
        line0 = f"TRADING {EMERGENCY_LABEL if emergency else state}"
        for scope in risk.get("scopes", ()):
            left = "" if scope["until"] is None else f", {max(0, scope['until'] - snap.ts) / 60e9:.0f} min left"
            why = f"({scope['source']}: {scope['cause']}{left})"
            line0 += f" {why}" if scope["scope"] == "portfolio" else f"  {scope['scope']} {scope['state']} {why}"
        if risk.get("flattening"):
            line0 += f"  closing {risk['flattening']} position(s)"
        line0 += "   keys: h halt  p pause  r resume  ! ! emergency stop  q quit  ? help"
        if snap.session_id is not None:
            line1 += (f"  session {snap.session_id}" + (f" (restart {snap.restarts})" if snap.restarts else "")
                      + f"  saved {snap.store_committed:,} rows  backlog {snap.store_backlog:,}")
            if snap.store_error:
                line1 += f"  STORE ERROR: {snap.store_error}"
            if snap.behaviour_score is not None:
                line1 += (f"  behaviour {snap.behaviour_score:.2f}/100 vs backtest"
                          + (f" ({snap.behaviour_unexplained} unexplained)" if snap.behaviour_unexplained else ""))
        status = self.query_one("#status", Static)
        lines = [line0, line1, line2]
        if health is not None:
            # its own line, cut to the width (78 before the first layout: 80 columns less the padding)
            lines.insert(1, health.header(status.content_size.width or 78))
            status.styles.height = len(lines) + 1  # and the border
        content = Text("\n".join(lines))
        if emergency:  # reversed too: under NO_COLOR the state still stands out by more than its words
            content.stylize("bold reverse", len("TRADING "), len("TRADING ") + len(EMERGENCY_LABEL))
        status.update(content)
        status.set_class(bool(failed or snap.store_error), "-failed")
        status.set_class(emergency, "-emergency")
        status.set_class(state not in ("ACTIVE", "EMERGENCY_STOPPED"), "-restricted")

    def _show_positions(self, snap: EngineSnapshot) -> None:
        table = self.query_one("#positions", DataTable)
        for p in snap.positions:
            cells = (p.symbol, _num(p.qty, 4, signed=True), _num(p.avg_price), _num(p.mark),
                     _num(p.unrealised, signed=True), _num(p.realised, signed=True))
            self._upsert(table, p.symbol, cells)

    def _show_strategies(self, snap: EngineSnapshot) -> None:
        table = self.query_one("#strategies", DataTable)
        for s in snap.strategies:
            status = Text(s.status, style="bold red" if s.status != "RUNNING" else "green")
            self._upsert(table, s.name, (s.name, s.kind, status))

    def _show_fills(self, snap: EngineSnapshot) -> None:
        table = self.query_one("#fills", DataTable)
        known = set(self._fill_keys)
        added = False
        for fill in snap.recent_fills:
            if fill.fill_id in known:
                continue
            cells = (time.strftime("%H:%M:%S", time.gmtime(fill.ts / 1e9)), fill.strategy, fill.symbol,
                     Text(fill.side.name, style="green" if fill.side > 0 else "red"), _num(fill.qty, 4),
                     _num(fill.price), _num(fill.fee, 4), fill.liquidity.value, fill.basis.value,
                     _num(fill.depth, 4), _num(fill.slippage_bps, 1, signed=True))
            table.add_row(*cells, key=fill.fill_id)
            self._fill_keys.append(fill.fill_id)
            added = True
        if len(self._fill_keys) > MAX_FILL_ROWS:
            for key in self._fill_keys[:-MAX_FILL_ROWS]:
                table.remove_row(key)
            del self._fill_keys[:-MAX_FILL_ROWS]
        if added:
            table.scroll_end(animate=False)

    @staticmethod
    def _upsert(table: DataTable, key: str, cells: tuple) -> None:
        if key in table.rows:
            for column, value in zip(table.columns, cells, strict=True):
                table.update_cell(key, column, value)
        else:
            table.add_row(*cells, key=key)

    def refresh_chart(self) -> None:
        if self._snapshot is None or not self._showing():
            return
        series = self._snapshot.equity_series
        plot = self.query_one("#equity", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        if len(series) >= 2:
            plt.plot(list(series), marker="braille")
        plot.refresh()


async def run_console(config: AppConfig, duration: float | None, record_to: Path | None = None,
                      db: Path | None = None, new_session: bool = False, signals: StopSignals | None = None) -> int:
    """Run the session and the console on one loop; SIGINT, SIGTERM and SIGHUP stop both cleanly (in a terminal,
    Ctrl-C is a key to Textual, not a signal).

    Raises StoppedBeforeStart if a signal came before the session wrote anything."""
    session = PaperSession(config, record_to, db, new_session)
    stopped_by: list[str] = []
    app: PaperdeskApp | None = None

    def on_signal(sig: signal.Signals) -> None:
        if stopped_by:
            return  # already stopping: the close under way must finish
        stopped_by.append(sig.name)
        session.stop(sig.name)
        if app is not None:
            app.exit(0)

    with stop_signals(signals, on_signal):
        await session.open()  # a database that cannot be used is reported before the screen takes over
        try:
            app = PaperdeskApp(session)
        except BaseException:
            await session.close()  # the writer's thread would otherwise keep the process from exiting
            raise
        trading = asyncio.create_task(session.run(duration))
        trading.add_done_callback(lambda _: app.exit(0))
        try:
            await app.run_async()
        finally:
            reason = stopped_by[0] if stopped_by else "quit" if session.stopping else "duration"
            session.stop()
            snapshot = await trading
    print(f"summary stopped_by={reason} {snapshot.status_line()}")
    return app.return_code or 0
