"""The operator console over a desk (a session in this process, or one another process runs): a one-line header,
positions, open orders, the event log, strategies, breakers, market watch and the equity chart.

It reads snapshots at a fixed rate and never computes trading state itself; every key that changes trading goes
through the desk as an operator command (saved, audited, replayed on restart, like one from another shell).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.drivers.linux_driver import LinuxDriver
from textual.notifications import SeverityLevel
from textual.theme import BUILTIN_THEMES
from textual.widgets import DataTable, Footer, Input
from textual.worker import Worker, WorkerState

from console import strip_cycles
from console.commands_palette import TradingCommands
from console.desk import Desk, ThreadDesk
from console.headless import stop_signals
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.theme_store import DEFAULT_THEME, THEMES, save_theme, start_theme, theme_name
from console.widgets.breakers import BreakersTable
from console.widgets.equity import EquityChart
from console.widgets.events import EventLog
from console.widgets.header import EMERGENCY_LABEL, DeskHeader, HeaderFacts
from console.widgets.market import MarketWatch
from console.widgets.orders import OrdersTable
from console.widgets.positions import PositionsTable
from console.widgets.strategies import StrategiesTable
from engine.config import AppConfig, ConfigError, ConsoleConfig
from engine.session import PaperSession
from engine.session_thread import SessionThread
from engine.snapshot import EngineSnapshot
from engine.store.read import behaviour_history, open_reader

Panels = tuple[DeskHeader, PositionsTable, OrdersTable, StrategiesTable, BreakersTable, MarketWatch, EventLog]

if TYPE_CHECKING:
    from console.cli import StopSignals

__all__ = ["EMERGENCY_LABEL", "PaperdeskApp", "run_console"]

STYLES = Path(__file__).resolve().parent / "themes"  # package data: in a checkout, a link to the repo's themes/
COMPACT_CYCLE = ("events", "strategies", "breakers", "market", "equity")  # the third panel of the compact layout
PANELS = ("positions", "orders", *COMPACT_CYCLE)
# an engine line for an operator command: "command 12 halt from cli alice (reason): result"
COMMAND_LINE = re.compile(r"^command (?:\d+ )?(?P<command>\S+) from (?P<source>.+?)(?: \(.*\))?: (?P<result>.*)$")
HISTORY_POINTS = 40  # live behaviour scores read for the strategies' trends


def read_behaviour_history(db: Path, session_id: int) -> tuple[list[float], dict[str, list[float]]]:
    """The live behaviour scores, oldest first, from the session's behaviour series (run in a worker thread): the
    portfolio's, and each strategy's own where the series has it."""
    def scores(strategy: str | None) -> list[float]:
        points = behaviour_history(conn, session_id, strategy, HISTORY_POINTS)
        return [p["score"] for p in points if p["score"] is not None]
    conn = open_reader(db)
    try:
        names = [name for (name,) in conn.execute("SELECT name FROM strategies WHERE session_id = ? ORDER BY rowid",
                                                  (session_id,))]
        return scores(None), {name: own for name in names if (own := scores(name))}
    finally:
        conn.close()


class FilterInput(Input):
    """The event log's filter: typing filters, Enter keeps the filter and goes back to the log, Escape clears it."""

    BINDINGS = [Binding("escape", "clear", "Clear the filter", show=False)]

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Submitted(self, ""))


class TerminalOutput:
    """The terminal as Textual's output thread writes to it, surviving the terminal's loss: once a write fails (EIO
    after an SSH drop or a closed tmux), the rest are dropped. Textual's thread would die on the error, and the next
    30 writes fill its queue and block the event loop for good, session and SIGHUP handler with it."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._file.write(text)
            except OSError:
                self.lost = True
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._file.flush()
            except OSError:
                self.lost = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class TerminalDriver(LinuxDriver):
    """Textual's driver for a POSIX terminal, writing through TerminalOutput."""

    def __init__(self, app: App[Any], **options: Any) -> None:
        super().__init__(app, **options)
        if self._file is not None:
            self._file = cast(Any, TerminalOutput(self._file))


class PaperdeskApp(App[int]):
    """Watches a desk. Trading keys (halt, pause, resume, emergency stop, quit) are App-level priority bindings, so
    no focused table or modal swallows them (a focused text input keeps its letters: Textual gives it the keys it
    types). Every action has a binding id ([console.keys] remaps it) and is in the command palette."""

    CSS_PATH = [STYLES / "paperdesk.tcss", STYLES / "high-contrast.tcss"]
    TITLE = "paperdesk"
    COMMANDS = App.COMMANDS | {TradingCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("h", "operator('halt')", "Halt", priority=True, id="halt",
                tooltip="Halt: no new orders (the selected strategy when Strategies has the focus, else all)"),
        Binding("p", "operator('pause')", "Pause", priority=True, id="pause",
                tooltip="Pause: no new entries (the selected strategy when Strategies has the focus, else all)"),
        Binding("r", "operator('resume')", "Resume", priority=True, id="resume",
                tooltip="Resume trading (the selected strategy when Strategies has the focus; asks when the "
                        "portfolio is latched)"),
        Binding("exclamation_mark", "emergency_stop", "E-STOP", priority=True, id="emergency-stop",
                tooltip="Emergency stop: cancel every order, close every position (asks; ! twice is the fast "
                        "path)"),
        Binding("q", "quit_session", "Quit", priority=True, id="quit",
                tooltip="Quit (asks when positions or orders are open)"),
        Binding("question_mark,f1", "help", "Help", id="help", tooltip="Help: keys, trading states, panels"),
        Binding("x", "flatten", "Flatten", id="flatten", tooltip="Flatten the selected position (asks)"),
        Binding("c", "cancel_order", "Cancel", id="cancel-order", tooltip="Cancel the selected open order"),
        Binding("C", "cancel_strategy", "Cancel all", id="cancel-strategy", show=False,
                tooltip="Cancel every open order of the selected order's strategy"),
        Binding("enter", "detail", "Details", id="detail", show=False,
                tooltip="Details of the selected order, fill, strategy or breaker"),
        Binding("b", "behaviour", "Behaviour", id="behaviour", show=False,
                tooltip="Behaviour screen: the score against the backtest, its components and differences"),
        Binding("j", "journal", "Journal", id="journal", show=False,
                tooltip="Decision journal (of the selected strategy when Strategies has the focus)"),
        Binding("slash", "filter_events", "Filter", id="filter-events", show=False,
                tooltip="Filter the event log"),
        Binding("z", "toggle_maximize", "Max", id="maximize", tooltip="Maximise the focused panel, or restore it"),
        Binding("n", "next_panel", "Next", id="next-panel",
                tooltip="Focus the next panel (the compact layout shows it third)"),
        Binding("t", "next_theme", "Theme", id="theme", show=False,
                tooltip="Next theme: dark, light, high contrast (remembered for the next start)"),
    ]
    # what [console.keys] may remap and the palette offers
    ACTION_IDS = frozenset(b.id for b in BINDINGS if isinstance(b, Binding) and b.id)
    REFRESH_SECONDS = 0.1  # ten refreshes a second (issue 15); bench/console_load.py measures what one costs
    CHART_SECONDS = 1.0
    HISTORY_SECONDS = 5.0
    CONFIRM_SECONDS = 3.0  # wall seconds between the two presses of the fast emergency stop

    def __init__(self, desk: Desk, config: AppConfig | None = None, theme: str | None = None,
                 settings: ConsoleConfig | None = None) -> None:
        """settings: [console] when it is not config's (an attached console: a stored config has none)."""
        super().__init__(driver_class=TerminalDriver if os.name == "posix" else None)
        strip_cycles.install()
        self.desk = desk
        self.config = config
        self.settings = settings or (config.console if config is not None else ConsoleConfig())
        check_keys(self.settings.keys)
        self.set_keymap(self.settings.keys)
        self._facts_venue = "simulated venue" if config is None or config.venue.kind == "simulated" \
            else config.venue.kind
        self._threshold = config.validation.min_score if config is not None else 85.0
        self._snapshot: EngineSnapshot | None = None  # the last one refresh_view took; the chart reuses it
        self._panels: Panels | None = None  # looked up once: a query on every refresh costs
        self._armed: dict[str, int] = {}  # action -> wall ns of its first press, for the fast emergency stop
        self._source = f"console {getpass.getuser()}"
        self._sending = asyncio.Lock()  # an attached desk's commands go out in a worker, in the order given
        self._seen_seq = 0
        self._states: dict[str, str] | None = None  # scope -> trading state at the last refresh (None: not yet)
        self._failed: set[str] = set()
        self._picked = COMPACT_CYCLE[0]
        self._theme_in_use = ""
        for palette in THEMES:
            self.register_theme(palette)
        self._start_theme, self._theme_source = start_theme(theme, self.settings.theme)

    def wall_now(self) -> int:
        """Epoch nanoseconds of the wall clock: the only way the console reads it (snapshot tests freeze it)."""
        return time.time_ns()

    def key_bindings(self) -> list[Binding]:
        """Every key the app answers to, as [console.keys] remapped them: Textual's own, these BINDINGS, then the
        palette's."""
        keymap = self._keymap
        return [replace(b, key=keymap[b.id]) if b.id is not None and b.id in keymap else b
                for _key, b in self._bindings]

    def _key_of(self, action_id: str) -> str:
        """The first key of an action as [console.keys] left it, as the footer shows it."""
        binding = next(b for b in self.key_bindings() if b.id == action_id)
        return self.get_key_display(replace(binding, key=binding.key.split(",")[0].strip()))

    def compose(self) -> ComposeResult:
        yield DeskHeader()
        with Container(id="body"):
            yield PositionsTable()
            yield OrdersTable()
            yield StrategiesTable()
            yield BreakersTable()
            yield MarketWatch()
            yield EventLog()
            yield EquityChart()
        yield FilterInput(placeholder="filter the event log (Enter keeps it, Escape clears it)", id="events-filter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self._start_theme in self.available_themes:
            self.theme = self._start_theme
        else:
            self.theme = DEFAULT_THEME
            self.notify(f"{self._theme_source}: no theme {self._start_theme!r}; using {DEFAULT_THEME}",
                        severity="warning", timeout=10)
        self._theme_in_use = self.theme  # the signal reports this one too (published later): not a choice to save
        self._theme_classes()
        self.theme_changed_signal.subscribe(self, self._theme_chosen)
        self.query_one("#events").add_class("-picked")
        self.query_one("#events-filter").display = False
        self.query_one("#positions").focus()
        self.refresh_view()
        self.set_interval(self.REFRESH_SECONDS, self.refresh_view)
        self.set_interval(self.CHART_SECONDS, self.refresh_chart)
        if self.desk.db_path is not None:
            self.load_history()
            self.set_interval(self.HISTORY_SECONDS, self.load_history)

    # -- the view ---------------------------------------------------------------------------------------------

    def _showing(self) -> bool:
        """The panels are there to fill: a refresh timer can still tick while the app exits and they are removed."""
        return self.is_running and bool(self.default_screen.query("#header"))

    def refresh_view(self) -> None:
        if not self._showing():
            return
        snap = self._snapshot = self.desk.snapshot()
        if self._panels is None:
            screen = self.default_screen
            self._panels = (screen.query_one(DeskHeader), screen.query_one(PositionsTable),
                            screen.query_one(OrdersTable), screen.query_one(StrategiesTable),
                            screen.query_one(BreakersTable), screen.query_one(MarketWatch), screen.query_one(EventLog))
        with self.batch_update():  # one repaint for every panel's changes
            self._panels[0].show(snap, HeaderFacts(self._facts_venue, self.desk.link(), self._threshold,
                                                   self.wall_now()))
            for table in self._panels[1:]:
                table.show(snap)
        self._alert(snap)

    def refresh_chart(self) -> None:
        if self._snapshot is None or not self._showing():
            return
        self.default_screen.query_one(EquityChart).show(self._snapshot)

    def load_history(self) -> None:
        db, session_id = self.desk.db_path, self.desk.session_id
        if db is None or session_id is None:
            return
        self.run_worker(partial(read_behaviour_history, db, session_id), thread=True, group="behaviour",
                        exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "behaviour" or not self._showing():
            return
        if event.state == WorkerState.SUCCESS and worker.result is not None:
            portfolio, per_strategy = worker.result
            self.default_screen.query_one(StrategiesTable).set_history(portfolio, per_strategy, self._threshold)
        elif event.state == WorkerState.ERROR and not isinstance(worker.error, sqlite3.Error):
            self.notify(f"behaviour history: {worker.error}", severity="warning", timeout=6)

    # -- alerts: what changed without the operator's key --------------------------------------------------------

    def _alert(self, snap: EngineSnapshot) -> None:
        alerts: list[tuple[str, SeverityLevel]] = []
        for line in snap.event_log:
            if line.seq <= self._seen_seq or line.kind != "engine":
                continue
            match = COMMAND_LINE.match(line.text)
            if match is not None and match["source"] != self._source and self._states is not None:
                alerts.append((f"{match['command']} from {match['source']}: {match['result']}", "warning"))
        if snap.event_log:
            self._seen_seq = max(self._seen_seq, snap.event_log[-1].seq)
        states = {"portfolio": snap.trading_state}
        causes = {}
        for scope in snap.risk.get("scopes", ()):
            states[scope["scope"]] = scope["state"]
            causes[scope["scope"]] = f" ({scope['source']}: {scope['cause']})"
        if self._states is not None:
            for scope in sorted(states.keys() | self._states.keys()):
                now, before = states.get(scope, "ACTIVE"), self._states.get(scope, "ACTIVE")
                if now != before:
                    severity: SeverityLevel = "error" if now == "EMERGENCY_STOPPED" \
                        else "information" if now == "ACTIVE" else "warning"
                    alerts.append((f"{scope}: {before} -> {now}{causes.get(scope, '')}", severity))
        self._states = states
        failed = {s.name: s.error for s in snap.strategies if s.status != "RUNNING"}
        for name in failed.keys() - self._failed:
            alerts.append((f"strategy {name} FAILED and stopped: {failed[name]}", "error"))
        self._failed = set(failed)
        for text, severity in alerts:
            self.notify(text, severity=severity, timeout=8, markup=False)
        if alerts and self.settings.bell:
            self.bell()

    # -- actions ------------------------------------------------------------------------------------------------

    def _focused(self) -> Any:
        return self.screen.focused

    def _send(self, command: str, args: dict[str, Any], reason: str, what: str) -> None:
        """Send a command through the desk, after the desk's own question if it has one (no session running)."""
        question = self.desk.confirm_first(command)
        if question is None:
            self._deliver(command, args, reason, what)
        else:
            self._ask(question, f"send {command}", lambda: self._deliver(command, args, reason, what))

    def _deliver(self, command: str, args: dict[str, Any], reason: str, what: str) -> None:
        if not self.desk.attached:  # a session in this process applies it here and now, between market events
            self._delivered(what, *self.desk.command(command, args, reason, self._source))
            return

        async def queue() -> None:  # an attached desk writes to the database: never on the event loop
            async with self._sending:  # one at a time, in the order given: halt then resume must not swap
                self._delivered(what, *await asyncio.to_thread(self.desk.command, command, args, reason,
                                                               self._source))

        self.run_worker(queue(), group="commands")

    def _delivered(self, what: str, ok: bool, result: str) -> None:
        self.notify(f"{what}: {result}", severity="information" if ok else "error", timeout=6, markup=False)
        self.refresh_view()

    def _ask(self, question: str, yes: str, then: Callable[[], None], purpose: str = "") -> None:
        def answered(confirmed: bool | None) -> None:
            self._armed.pop(purpose, None)
            if confirmed:
                then()

        self.push_screen(ConfirmScreen(question, yes, purpose), answered)

    def action_operator(self, command: str) -> None:
        """halt, pause or resume: the selected strategy when the strategies table has the focus, else the
        portfolio; resuming from an emergency stop asks first."""
        focused = self._focused()
        name = focused.selected_name() if isinstance(focused, StrategiesTable) else None
        args = {"strategy": name} if name else {}
        what = f"strategy {name}" if name else "portfolio"
        reason = f"{command} key in the console"
        if command == "resume" and not name and self._state() == "EMERGENCY_STOPPED":
            self._ask("The portfolio is EMERGENCY STOPPED. Resume trading?", "resume trading",
                      lambda: self._send(command, args, "resumed from the console after an emergency stop", what))
            return
        self._send(command, args, reason, what)

    def _state(self) -> str:
        return self.desk.snapshot().trading_state

    def action_emergency_stop(self) -> None:
        """Asks in a modal; a second press within CONFIRM_SECONDS (the modal open or not) is the fast path."""
        now = self.wall_now()
        first = self._armed.get("emergency-stop")
        if first is not None and now - first <= self.CONFIRM_SECONDS * 1e9:
            self._armed.pop("emergency-stop")
            if isinstance(self.screen, ConfirmScreen) and self.screen.purpose == "emergency-stop":
                self.screen.dismiss(False)
            self._send("emergency-stop", {}, "emergency-stop key in the console", "EMERGENCY STOP")
            return
        self._armed["emergency-stop"] = now
        self._ask("EMERGENCY STOP: cancel every order and close every position now? Trading stays stopped until "
                  f"you resume it. (Pressing {self._key_of('emergency-stop')} again also confirms.)", "EMERGENCY STOP",
                  lambda: self._send("emergency-stop", {}, "emergency-stop key in the console", "EMERGENCY STOP"),
                  purpose="emergency-stop")

    def action_cancel_order(self) -> None:
        order = self.default_screen.query_one(OrdersTable).selected()
        if order is None:
            self.notify("no open order selected (Tab to Open orders, arrows to pick one)", severity="warning")
            return
        self._send("cancel", {"order": order.client_id}, "cancel key in the console", f"order {order.client_id}")

    def action_cancel_strategy(self) -> None:
        order = self.default_screen.query_one(OrdersTable).selected()
        if order is None:
            self.notify("no open order selected: C cancels every order of the selected order's strategy",
                        severity="warning")
            return
        self._send("cancel", {"strategy": order.strategy}, "cancel-all key in the console",
                   f"strategy {order.strategy}")

    def action_flatten(self) -> None:
        table = self.default_screen.query_one(PositionsTable)
        symbol = table.selected_key()
        if symbol is None:
            self.notify("no position selected (Tab to Positions, arrows to pick one)", severity="warning")
            return
        qty = str(table.get_row(symbol)[1]).strip()
        # flatten leaves trading states alone: a strategy free to trade would be seen to undo it as a surprise
        config = self.config
        trades_it = {c.name for c in config.strategies if symbol in c.symbols} if config is not None else set()
        again = [s.name for s in self.desk.snapshot().strategies if s.status == "RUNNING" and s.state == "ACTIVE"
                 and (s.name in trades_it or any(held == symbol for held, _ in s.positions))]
        warning = (f" {', '.join(again)} may trade it again: pause {'them' if len(again) > 1 else 'it'} first to keep "
                   "it flat." if again else "")
        self._ask(f"Flatten {symbol}: close the position ({qty}) at market and cancel its open orders?{warning}",
                  f"flatten {symbol}",
                  lambda: self._send("flatten", {"symbol": symbol}, "flatten key in the console", symbol))

    def action_quit_session(self) -> None:
        snap = self.desk.snapshot()
        held = sum(1 for p in snap.positions if p.qty)
        if not held and not snap.open_order_list:
            self._quit()
            return
        if self.desk.attached:
            after = ("The session keeps trading in its own process; only this console closes." if self.desk.running
                     else "Only this console closes; the session is not running and its state stays saved.")
        elif self.desk.db_path is not None:
            after = (f"The session stops; its positions and orders stay saved in {self.desk.db_path} and resume "
                     "with the next `paperdesk run` on it.")
        else:
            after = "The session stops; it is not saved (no database), so they end with it."
        self._ask(f"{held} position(s) and {len(snap.open_order_list)} open order(s). Quit the console? {after}",
                  "quit", self._quit)

    def _quit(self) -> None:
        self.desk.stop("operator pressed q")
        self.exit(0)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_bindings()))

    def action_filter_events(self) -> None:
        box = self.query_one("#events-filter", FilterInput)
        box.display = True
        box.focus()

    @on(Input.Changed, "#events-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        self.query_one(EventLog).set_filter(event.value)

    @on(Input.Submitted, "#events-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        log = self.query_one(EventLog)
        log.set_filter(event.value)
        event.input.display = False
        log.focus()

    def action_toggle_maximize(self) -> None:
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        focused = screen.focused
        if focused is None or not screen.maximize(focused):
            self.notify("focus a panel first (Tab), then z", severity="warning")

    def action_next_panel(self) -> None:
        """Focus the next of the panels the compact layout hides (it shows that one in its third place)."""
        self._picked = COMPACT_CYCLE[(COMPACT_CYCLE.index(self._picked) + 1) % len(COMPACT_CYCLE)]
        for name in COMPACT_CYCLE:
            self.query_one(f"#{name}").set_class(name == self._picked, "-picked")
        self.query_one(f"#{self._picked}").focus()

    def action_next_theme(self) -> None:
        names = [t.name for t in THEMES]
        at = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[at % len(names)]
        self.notify(f"theme {self.theme}", timeout=3)

    def _theme_chosen(self, _theme: Any) -> None:
        self._theme_classes()
        if self.theme == self._theme_in_use:
            return
        self._theme_in_use = self.theme
        problem = save_theme(self.theme)
        if problem is not None:
            self.notify(f"theme not remembered: {problem}", severity="warning", timeout=6)

    def _theme_classes(self) -> None:
        self.set_class(self.theme == "paperdesk-high-contrast", "-high-contrast")

    # -- screens ------------------------------------------------------------------------------------------------

    def action_behaviour(self) -> None:
        from console.screens.behaviour import BehaviourScreen

        self.push_screen(BehaviourScreen(self.desk))

    def action_journal(self) -> None:
        from console.screens.journal import JournalScreen

        focused = self._focused()
        self.push_screen(JournalScreen(self.desk, focused.selected_name()
                                       if isinstance(focused, StrategiesTable) else None))

    def action_detail(self) -> None:
        focused = self._focused()
        if isinstance(focused, DataTable):
            self._open_detail(focused)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open_detail(event.data_table)

    def _open_detail(self, table: DataTable) -> None:
        from console.screens.detail import BreakerDetailScreen, OrderDetailScreen, StrategyDetailScreen

        if isinstance(table, OrdersTable) and (order := table.selected()) is not None:
            self.push_screen(OrderDetailScreen(self.desk, order.client_id))
        elif isinstance(table, EventLog) and (client_id := table.selected_order()) is not None:
            self.push_screen(OrderDetailScreen(self.desk, client_id))
        elif isinstance(table, StrategiesTable) and (name := table.selected_name()) is not None:
            self.push_screen(StrategyDetailScreen(self.desk, name))
        elif isinstance(table, BreakersTable) and (gauge := table.selected()) is not None:
            self.push_screen(BreakerDetailScreen(self.desk, *gauge))


def binding_ids() -> list[str]:
    return sorted(PaperdeskApp.ACTION_IDS)


def check_keys(keys: dict[str, str]) -> None:
    """[console.keys] names binding ids; an unknown one is refused, naming the valid ones."""
    unknown = sorted(set(keys) - set(binding_ids()))
    if unknown:
        raise ConfigError(f"config [console.keys]: no action {', '.join(map(repr, unknown))}; the actions are "
                          f"{', '.join(binding_ids())}")
    # the app's priority keys come before a modal's: on y, Enter, n or Escape one would take the operator's answer
    priority = {b.id for b in PaperdeskApp.BINDINGS if isinstance(b, Binding) and b.priority}
    answers = {key for b in ConfirmScreen.BINDINGS if isinstance(b, Binding) for key in b.key.split(",")}
    for action, spelt in keys.items():
        if action in priority and answers & {key.strip() for key in spelt.split(",")}:
            raise ConfigError(f"config [console.keys] {action} = {spelt!r}: y, enter, n and escape answer the "
                              "confirm questions (emergency stop, flatten, quit); map it to another key")


def check_theme(name: str | None) -> None:
    """--theme names a paperdesk theme (dark, light, high-contrast) or a Textual one."""
    known = [t.name for t in THEMES] + list(BUILTIN_THEMES)
    if name is not None and theme_name(name) not in known:
        raise ConfigError(f"--theme {name}: no such theme; use dark, light, high-contrast or one of Textual's "
                          f"({', '.join(sorted(BUILTIN_THEMES))})")


async def run_console(config: AppConfig, duration: float | None, record_to: Path | None = None,
                      db: Path | None = None, new_session: bool = False, signals: StopSignals | None = None,
                      theme: str | None = None) -> int:
    """Run the console here and the session on a loop of its own (engine/session_thread.py), so a frame being
    painted never delays a market event; SIGINT, SIGTERM and SIGHUP stop both cleanly (in a terminal, Ctrl-C is a
    key to Textual, not a signal).

    Raises StoppedBeforeStart if a signal came before the session wrote anything."""
    check_keys(config.console.keys)  # before the session opens: a typo in a key costs nothing
    check_theme(theme)
    session = PaperSession(config, record_to, db, new_session)
    runner = SessionThread(session)
    stopped_by: list[str] = []
    app: PaperdeskApp | None = None

    def on_signal(sig: signal.Signals) -> None:
        if stopped_by:
            return  # already stopping: the close under way must finish
        stopped_by.append(sig.name)
        runner.stop(sig.name)
        if app is not None:
            app.exit(0)

    with stop_signals(signals, on_signal):
        await runner.open()  # a database that cannot be used is reported before the screen takes over
        try:
            app = PaperdeskApp(ThreadDesk(runner), config, theme)
        except BaseException:
            await runner.close()  # the writer's thread would otherwise keep the process from exiting
            raise
        trading = asyncio.ensure_future(runner.run(duration))
        trading.add_done_callback(lambda _: app.exit(0))
        try:
            await app.run_async()
        finally:
            reason = stopped_by[0] if stopped_by else "quit" if session.stopping else "duration"
            runner.stop("stop requested")
            snapshot = await trading
    print(f"summary stopped_by={reason} {snapshot.status_line()}")
    return app.return_code or 0
