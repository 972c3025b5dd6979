"""The help screen: every key the console has, grouped, built from the app's bindings so it cannot go stale."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

SAFETY = "Trading safety"
NAVIGATION = "Navigation"
QUIT = "Quit"
GROUPS = (SAFETY, NAVIGATION, QUIT)  # the order shown: what stops trading comes first


def group_of(binding: Binding) -> str:
    """SAFETY for the keys that change the trading state, QUIT for quitting, NAVIGATION for the rest."""
    if binding.action.startswith("operator(") or binding.action == "emergency_stop":
        return SAFETY
    if binding.action in ("quit", "quit_session"):
        return QUIT
    return NAVIGATION


def describe(binding: Binding) -> str:
    return binding.description or binding.tooltip or binding.action


class HelpScreen(ModalScreen[None]):
    """The keys, one line per action (its keys joined), by group; Escape, ? or F1 closes it."""

    BINDINGS = [Binding("escape,question_mark,f1", "dismiss", "Close help")]

    def __init__(self, bindings: Iterable[Binding]) -> None:
        super().__init__()
        self._bindings_shown = list(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self.listing(), id="help-keys")

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
