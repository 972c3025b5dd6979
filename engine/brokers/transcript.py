"""What a venue that holds our orders told the engine, and exactly when: kept so a resume can rebuild the session.

A simulated venue is rebuilt by replaying the market data it filled on. A real one (an exchange's testnet) cannot be:
its reports arrive on its own schedule. So the engine hears a real venue only at one point, the start of each market
event (Broker.advance), and each report is saved with the number of market events processed before it, the answer to
each cancel and modify with it, and each order's id at the venue. A resume replays the session's market data with the
transcript standing in for the venue, which hands the engine every report at the same point as before; nothing is sent
to the venue while it does. Then the venue takes over, told what the session knew (HoldsOrders.adopt), to reconcile.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.brokers.broker import AccountSnapshot, Broker, VenueCapabilities
from engine.clock import wall_ns
from engine.model.fill import Fill
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import Order
from engine.model.venue_event import CancelAck, VenueEvent, VenueEventKind

# rows that are not venue events
SENT = "SENT"              # an order handed to the venue; venue_ref is its id there
CANCEL_ACK = "CANCEL_ACK"  # the venue's immediate answer to a cancel (reason: the CancelAck)
MODIFY_ACK = "MODIFY_ACK"  # the venue's answer to a modify (reason: "1" or "0")
OPENING = "OPENING"        # a reconciliation's baseline (reason: JSON of Baseline): at the start, after each resume


@dataclass(frozen=True, slots=True)
class TranscriptRow:
    n: int              # order of the row in the session
    market_seq: int     # market events the engine had processed when it heard this
    kind: str           # a VenueEventKind, or SENT, CANCEL_ACK, MODIFY_ACK, OPENING
    client_id: str
    ts: int
    reason: str = ""
    latency_ns: int = 0
    fill_id: str | None = None
    venue_ref: str | None = None


@dataclass(frozen=True, slots=True)
class KnownOrder:
    """An order the session's saved state says the venue may still work."""

    order: Order
    venue_ref: str
    sent_ts: int  # wall nanoseconds when it was handed to the venue


@dataclass(slots=True)
class Baseline:
    """What the venue held when the session last reconciled with it: the balances (after the first `fills` of the
    session's fills) and the orders of this session already reported as unknown to its saved state."""

    balances: dict[str, float] = field(default_factory=dict)
    fills: int = 0
    strangers: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"balances": self.balances, "fills": self.fills, "strangers": self.strangers},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        data = json.loads(text)
        return cls(dict(data.get("balances") or {}), int(data.get("fills") or 0), list(data.get("strangers") or []))


@dataclass(slots=True)
class KnownState:
    """What a resumed session knew of its venue: handed to the venue before it connects again."""

    open_orders: list[KnownOrder]
    fills: list[Fill]
    venue_refs: dict[str, str]               # every order's id at the venue -> our client id
    baseline: Baseline | None                # the latest; None for a session that saved none
    run: int                                 # how many times the session has been resumed, this one included
    saved_until_ns: int = 0                  # the last saved market event: anything sent later is not in the state
    unsent: list[Order] = field(default_factory=list)  # open, but the venue refused them before they went out


@runtime_checkable
class HoldsOrders(Protocol):
    """A venue that keeps working our orders while the session is down, and can say what it did meanwhile."""

    reconciliation: str | None  # what the last reconciliation found, in a line
    mismatch: str | None        # set when what the venue holds cannot be explained by what the session knew

    def venue_ref(self, client_id: str) -> str | None:
        """The order's id at the venue (None if it never went out)."""
        ...

    def baseline(self) -> Baseline | None:
        """What to reconcile against next time, once connected (None: nothing new to save)."""
        ...

    def adopt(self, known: KnownState) -> None:
        """Before connect() on a resume: the orders, fills and balances the session knew."""
        ...


class TranscriptMismatch(Exception):
    """A replay asked something of the venue that the transcript does not hold: the session is not rebuilt exactly."""


class Transcribed:
    """A Broker around a venue that holds our orders: it reports to the engine only at advance(), and every report is
    handed to `record`. Built in replay mode when given a transcript; go_live() then hands over to the venue."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.capabilities: VenueCapabilities = inner.capabilities
        self.events: deque[VenueEvent] = deque()
        self.record: Callable[[TranscriptRow], None] | None = None
        self.market_seq = 0
        self.rows = 0
        self._replay: _Replay | None = None

    def __getattr__(self, name: str) -> Any:
        # health, latency, reconciliation: whatever else the venue reports, read through
        return getattr(self.inner, name)

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self.inner.instruments

    @property
    def waiting(self) -> bool:
        """The venue has reported something the engine has not heard yet."""
        return bool(self.inner.events) if self._replay is None else False

    # ---- replay ------------------------------------------------------------------------------

    def replay(self, rows: list[TranscriptRow], fills: Mapping[str, Fill]) -> None:
        """Stand in for the venue with a session's transcript until go_live()."""
        self._replay = _Replay(rows, fills)
        self.rows = len(rows)

    def go_live(self) -> tuple[list[str], list[TranscriptRow]]:
        """End the replay. Returns what in the transcript the replay should have reached but did not (empty when
        rebuilt exactly), and the rows heard before a market event that was never saved (a failure or a crash
        between the two): those were never applied, and reconciling with the venue finds what they said again."""
        replay, self._replay = self._replay, None
        return ([], []) if replay is None else replay.leftovers(self.market_seq)

    @property
    def replaying(self) -> bool:
        return self._replay is not None

    # ---- Broker ----------------------------------------------------------------------------------

    def attach(self, record: Callable[[TranscriptRow], None]) -> None:
        """Start saving, once the session has a journal: first the baseline the venue reconciled to (if any)."""
        self.record = record
        baseline = self.inner.baseline() if isinstance(self.inner, HoldsOrders) else None
        if baseline is not None:
            self._write(OPENING, "", wall_ns(), baseline.to_json())

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    def submit(self, order: Order) -> None:
        if self._replay is not None:
            self._replay.submitted(order)
            return
        self.inner.submit(order)
        ref = self.inner.venue_ref(order.client_id) if isinstance(self.inner, HoldsOrders) else order.client_id
        self._write(SENT, order.client_id, wall_ns(), venue_ref=ref)  # wall time: how long it may still be in flight

    def cancel(self, client_id: str, reason: str) -> CancelAck:
        if self._replay is not None:
            return CancelAck(self._replay.answer(CANCEL_ACK, client_id))
        ack = self.inner.cancel(client_id, reason)
        self._write(CANCEL_ACK, client_id, 0, ack.value)
        return ack

    def modify(self, client_id: str, qty: float | None = None, price: float | None = None) -> bool:
        if self._replay is not None:
            return self._replay.answer(MODIFY_ACK, client_id) == "1"
        done = self.inner.modify(client_id, qty, price)
        self._write(MODIFY_ACK, client_id, 0, "1" if done else "0")
        return done

    def advance(self, ts: int) -> None:
        """The one point at which the engine hears the venue: before market event market_seq + 1."""
        if self._replay is not None:
            self.events.extend(self._replay.due(self.market_seq))
        else:
            self.inner.advance(ts)
            inner = self.inner.events
            while inner:
                event = inner.popleft()
                self.events.append(event)
                self._write(event.kind.value, event.client_id, event.ts, event.reason, event.latency_ns,
                            event.fill.fill_id if event.fill is not None else None)
        self.market_seq += 1

    def on_book(self, book: BookSnapshot) -> None:
        if self._replay is None:
            self.inner.on_book(book)

    def on_trade(self, tick: TradeTick) -> None:
        if self._replay is None:
            self.inner.on_trade(tick)

    def on_bar(self, bar: Bar) -> None:
        if self._replay is None:
            self.inner.on_bar(bar)

    async def account(self) -> AccountSnapshot:
        return await self.inner.account()

    def _write(self, kind: str, client_id: str, ts: int, reason: str = "", latency_ns: int = 0,
               fill_id: str | None = None, venue_ref: str | None = None) -> None:
        self.rows += 1
        if self.record is not None:
            self.record(TranscriptRow(self.rows, self.market_seq, kind, client_id, ts, reason, latency_ns, fill_id,
                                      venue_ref))


class _Replay:
    """A transcript handed back in the order and at the points the engine first heard it."""

    def __init__(self, rows: list[TranscriptRow], fills: Mapping[str, Fill]) -> None:
        self.events: deque[TranscriptRow] = deque(r for r in rows if r.kind in VenueEventKind.__members__)
        self.answers: dict[tuple[str, str], deque[TranscriptRow]] = defaultdict(deque)
        self.sent: dict[str, TranscriptRow] = {}
        for row in rows:
            if row.kind in (CANCEL_ACK, MODIFY_ACK):
                self.answers[(row.kind, row.client_id)].append(row)
            elif row.kind == SENT:
                self.sent[row.client_id] = row
        self.fills = fills
        self.unsent: list[str] = []

    def due(self, market_seq: int) -> list[VenueEvent]:
        out = []
        while self.events and self.events[0].market_seq <= market_seq:
            row = self.events.popleft()
            fill = None
            if row.fill_id is not None:
                fill = self.fills.get(row.fill_id)
                if fill is None:
                    raise TranscriptMismatch(f"the venue's report of fill {row.fill_id} has no stored fill")
            out.append(VenueEvent(VenueEventKind(row.kind), row.client_id, row.ts, row.reason, fill, row.latency_ns))
        return out

    def submitted(self, order: Order) -> None:
        if self.sent.pop(order.client_id, None) is None:
            raise TranscriptMismatch(f"the replay sends order {order.client_id} ({order.side.name} {order.qty:g} "
                                     f"{order.symbol}), which the session never sent to the venue")

    def answer(self, kind: str, client_id: str) -> str:
        queue = self.answers.get((kind, client_id))
        if not queue:
            what = "cancels" if kind == CANCEL_ACK else "modifies"
            raise TranscriptMismatch(f"the replay {what} order {client_id} more often than the session did")
        return queue.popleft().reason

    def leftovers(self, replayed: int) -> tuple[list[str], list[TranscriptRow]]:
        # a report is heard before market event market_seq + 1; an order is sent during market event market_seq
        unheard = [r for r in self.events if r.market_seq >= replayed]
        unheard += [r for r in self.sent.values() if r.market_seq > replayed]
        out = [f"the venue reported {r.kind} for {r.client_id} after market event {r.market_seq}, which the replay "
               "never reached" for r in self.events if r.market_seq < replayed]
        # an answer the replay never asked for is left over harmlessly: the venue's report of the outcome (canceled or
        # not) is in the transcript and was applied
        out += [f"order {cid} was sent to the venue but the replay never made it" for cid, r in self.sent.items()
                if r.market_seq <= replayed]
        return out, unheard
