"""The help screen: every key the console has, grouped, built from the app's bindings (as [console.keys] remapped
them) so it cannot go stale; then what the trading states mean, what the breakers do and what each panel shows."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

SAFETY = "Trading safety"
NAVIGATION = "Panels and screens"
QUIT = "Quit"
GROUPS = (SAFETY, NAVIGATION, QUIT)  # the order shown: what stops trading comes first
SAFETY_ACTIONS = ("emergency_stop", "flatten", "cancel_order", "cancel_strategy")

STATES = (
    ("ACTIVE", "trading normally"),
    ("PAUSED", "no new entries; exits and bracket orders still work (r resumes)"),
    ("HALTED", "no new orders at all; open orders stay (r resumes)"),
    ("COOLDOWN", "a breaker tripped: no new entries until the countdown ends (then it resumes by itself)"),
    ("!! EMERGENCY STOPPED !!", "every order canceled and every position closed; latched until resumed (r asks)"),
)
PANELS = (
    ("header", "PAPER, venue (ATTACHED when another process runs the session), market clock (and wall clock when "
               "the market runs faster), equity, P&L since the session started, the trading state with its cause "
               "and time left, the behaviour score (LOW under the pass mark)"),
    ("Positions", "what is held now; flat positions leave; x flattens the selected one"),
    ("Open orders", "type, side, quantity, filled, price, age (market time), state; c cancels the selected order, "
                    "C every order of its strategy; Enter shows its history and fills"),
    ("Events", "order flow, fills, refusals, state changes, breaker trips and commands with their source; / filters; "
               "scrolled up it stops following until you are back at the end"),
    ("Strategies", "effective state (the strategy's or the portfolio's, the tighter), position, P&L, round trips, "
                   "win rate, risk phase, behaviour score and trend; h/p/r act on the selected strategy here"),
    ("Breakers", "restricted scopes first with their countdown, then each breaker's gauge, closest to tripping "
                 "first"),
    ("Market", "bid, ask, spread, last trade and how old each symbol's data is (STALE when old)"),
    ("Equity", "the equity curve in market time (UTC); H halt, E emergency stop, R restart"),
)


def group_of(binding: Binding) -> str:
    """SAFETY for the keys that change trading, QUIT for quitting, NAVIGATION for the rest."""
    if binding.action.startswith("operator(") or binding.action in SAFETY_ACTIONS:
        return SAFETY
    if binding.action in ("quit", "quit_session"):
        return QUIT
    return NAVIGATION


def describe(binding: Binding) -> str:
    """The longer words (the footer shows the short description)."""
    return binding.tooltip or binding.description or binding.action


class HelpScreen(ModalScreen[None]):
    """The keys, one line per action (its keys joined), by group; Escape, ? or F1 closes it."""

    BINDINGS = [Binding("escape,question_mark,f1", "dismiss", "Close help")]

    def __init__(self, bindings: Iterable[Binding]) -> None:
        super().__init__()
        self._bindings_shown = list(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self.listing(), id="help-keys")
            yield Static(self.reference(), id="help-reference")

    def listing(self) -> Text:
        keys: dict[str, dict[str, list[str]]] = {group: {} for group in GROUPS}
        descriptions: dict[str, str] = {}
        for binding in self._bindings_shown:
            by_action = keys[group_of(binding)]
            by_action.setdefault(binding.action, []).append(self.app.get_key_display(binding))
            descriptions.setdefault(binding.action, describe(binding))
        width = max((len(" / ".join(k)) for group in keys.values() for k in group.values()), default=0)
        text = Text()
        for group, by_action in keys.items():
            if not by_action:
                continue
            if text:
                text.append("\n")
            text.append(f"{group}\n", style="bold underline")
            for action, shown in by_action.items():
                text.append(f"  {' / '.join(shown):<{width}}  ", style="bold")
                text.append(f"{descriptions[action]}\n")
        return text

    @staticmethod
    def reference() -> Text:
        text = Text()
        for title, rows in (("Trading states", STATES), ("Panels", PANELS)):
            text.append(f"\n{title}\n", style="bold underline")
            width = max(len(name) for name, _ in rows)
            for name, meaning in rows:
                text.append(f"  {name:<{width}}  ", style="bold")
                text.append(f"{meaning}\n")
        return text
