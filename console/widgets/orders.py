"""#orders: every open order, oldest first, with its age in market time; c cancels the selected one, C every order
of its strategy (the app's keys)."""

from __future__ import annotations

from rich.text import Text

from console.widgets.cells import DeskTable, duration, num, retitle, tone
from engine.snapshot import EngineSnapshot, OrderView

TITLE = "Open orders"


class OrdersTable(DeskTable):
    def __init__(self) -> None:
        super().__init__(TITLE, ("order", "strategy", "symbol", "type", "side", "qty", "filled", "price", "age",
                                 "state"), id="orders")
        self.open: dict[str, OrderView] = {}

    def show(self, snap: EngineSnapshot) -> None:
        self.open = {o.client_id: o for o in snap.open_order_list}
        rows: dict[str, tuple[object, ...]] = {}
        for o in snap.open_order_list:
            side = Text(o.side, style=tone(self, "success" if o.side == "BUY" else "error"))
            price = o.price if o.price is not None else o.stop_price
            rows[o.client_id] = (o.client_id, o.strategy, o.symbol, o.type, side, num(o.qty, 4), num(o.filled, 4),
                                 num(price), Text(duration((snap.ts - o.created_ns) / 1e9), justify="right"),
                                 o.status if o.origin == "strategy" else f"{o.status} ({o.origin})")
        self.show_rows(rows)
        retitle(self, title=f"{TITLE} ({len(self.open)})")

    def selected(self) -> OrderView | None:
        key = self.selected_key()
        return None if key is None else self.open.get(key)
