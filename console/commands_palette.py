"""Every console action in Textual's command palette (ctrl+p).

Each command runs its key's own action, so a palette command and a key press take the same path: the emergency
stop asks in the same modal as the `!` key, and a trading command is saved like any other.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.screens.help import describe

if TYPE_CHECKING:
    from console.app import PaperdeskApp


class TradingCommands(Provider):
    """The app's own actions (those with a binding id), read from its bindings, in their order."""

    def _commands(self) -> list[Binding]:
        seen: set[str] = set()
        commands = []
        for binding in cast("PaperdeskApp", self.app).key_bindings():
            if binding.id and binding.id in cast("PaperdeskApp", self.app).ACTION_IDS and binding.action not in seen:
                seen.add(binding.action)
                commands.append(binding)
        return commands

    async def discover(self) -> Hits:
        for binding in self._commands():
            yield DiscoveryHit(describe(binding), partial(self.app.run_action, binding.action),
                               help=f"key: {self.app.get_key_display(binding)}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for binding in self._commands():
            name = describe(binding)
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), partial(self.app.run_action, binding.action), text=name,
                          help=f"key: {self.app.get_key_display(binding)}")
