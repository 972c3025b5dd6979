"""A yes/no question before an action that cannot be taken back (emergency stop, flatten, quit with positions
open, a command the desk wants confirmed). Its keys are priority bindings: no focused widget under it takes them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """y or Enter answers yes; n or Escape no (dismissed with True / False)."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", priority=True),
        Binding("n,escape", "answer(False)", "No", priority=True),
    ]

    def __init__(self, question: str, yes: str = "yes", purpose: str = "") -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.purpose = purpose  # what asks (the emergency stop's second press closes its own question)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question, id="confirm-question", markup=False)
            yield Static(f"y / Enter: {self.yes}      n / Escape: no, do nothing", id="confirm-keys", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
