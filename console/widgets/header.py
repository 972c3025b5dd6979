"""The one-line header: PAPER, venue and link, market clock, equity, session P&L, trading state, behaviour score.

It never wraps: when the line is too long, the least important field gives up words first (venue, then the
clock, the score, ...); equity, P&L and the trading state are the last to shrink and never go.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static

from console.widgets.cells import market_time, time_left, tone
from engine.snapshot import EngineSnapshot

EMERGENCY_LABEL = "!! EMERGENCY STOPPED !!"  # words and a marker: under NO_COLOR the colour says nothing
SEPARATOR = " │ "


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What the header shows that is not in the snapshot."""

    venue: str           # the venue's name when the snapshot has none (the simulated market)
    link: str | None     # None for a session in this process; "ATTACHED 0.4 s" for one another process runs
    threshold: float     # the behaviour score's pass mark ([validation] min_score)
    wall_ns: int         # the console's wall clock (PaperdeskApp.wall_now)


Variant = tuple[Text, float]  # a field's words and how much keeping them is worth (its last variant stays)


def fit(fields: list[tuple[Variant, ...]], width: int) -> Text:
    """The fields in their order, each at its longest variant that lets the line fit width: the variant worth the
    least gives way to its field's next (shorter, or empty) one first, one step at a time; then, worthiest first,
    fields take back longer variants while the line still fits."""
    chosen = [0] * len(fields)

    def line() -> list[Text]:
        return [f[c][0] for f, c in zip(fields, chosen, strict=True) if f[c][0].cell_len]

    def length(parts: list[Text]) -> int:
        return sum(p.cell_len for p in parts) + len(SEPARATOR) * max(0, len(parts) - 1)

    while length(line()) > width:
        shrinkable = [i for i, f in enumerate(fields) if chosen[i] < len(f) - 1]
        if not shrinkable:
            break
        cheapest = min(shrinkable, key=lambda i: fields[i][chosen[i]][1])
        chosen[cheapest] += 1
    # a later, longer cut can leave room for words an earlier one took: the worthiest get them back
    for i in sorted(range(len(fields)), key=lambda i: -fields[i][max(0, chosen[i] - 1)][1]):
        while chosen[i] > 0:
            chosen[i] -= 1
            if length(line()) > width:
                chosen[i] += 1
                break
    text = Text(SEPARATOR).join(line())
    text.truncate(width, overflow="ellipsis")
    return text


def state_badge(state: str) -> str:
    return EMERGENCY_LABEL if state == "EMERGENCY_STOPPED" else state


LAST = 0.0  # the worth of a field's last variant: never asked for, it is never given up


def header_fields(header: Static, snap: EngineSnapshot, facts: HeaderFacts) -> list[tuple[Variant, ...]]:
    """The header's fields in order; the worths say what gives way first (venue, then the clock's date, the
    words around the numbers, the score...): equity, P&L and the trading state's badge never go."""
    pnl = snap.equity - snap.starting_cash
    pnl_style = tone(header, "success" if pnl > 0 else "error" if pnl < 0 else "foreground")
    fields: list[tuple[Variant, ...]] = [((Text("PAPER", style="bold reverse"), 7.5),
                                          (Text("P", style="bold reverse"), LAST))]
    venue = snap.venue.name if snap.venue is not None else facts.venue
    if snap.venue is not None and not snap.venue.connected:  # a lost connection stays in sight, in words
        down = f"bold {tone(header, 'error')}"
        fields.append(((Text(f"{venue} {snap.venue.state}", style=down), 9),
                       (Text(snap.venue.state, style=down), LAST)))
    else:
        real = snap.venue is not None and not snap.venue.simulated
        connected = " connected" if real else ""
        brief = Text(f"{venue.split(' ')[0]}{connected}")
        fields.append(((Text(f"{venue}{connected}"), 2), (brief, 6 if real else 2.5), (Text(""), LAST)))
    if facts.link is not None:  # attached or read-only: which copy of the truth this is matters to every key
        fields.append(((Text(facts.link, style="bold"), 8.5), (Text(facts.link.split(" ")[0], style="bold"), LAST)))
    clock, short = market_time(snap.ts, date=True), market_time(snap.ts)
    if snap.speed != 1:  # the market runs faster than the wall: both clocks, labelled
        wall = time.strftime("%H:%M:%S", time.gmtime(facts.wall_ns / 1e9))
        fields.append(((Text(f"mkt {clock} UTC · wall {wall} · {snap.speed:g}x"), 3),
                       (Text(f"mkt {clock} · wall {wall}"), 3.5), (Text(f"mkt {short} · wall {wall}"), 4),
                       (Text(f"mkt {short}"), 5.5), (Text(""), LAST)))
    else:
        fields.append(((Text(f"{clock} UTC"), 3), (Text(clock), 3.5), (Text(short), 5.5), (Text(""), LAST)))
    fields.append(((Text(f"equity {snap.equity:,.2f}"), 4.5), (Text(f"eq {snap.equity:,.2f}"), 6.8),
                   (Text(f"eq {snap.equity:,.0f}"), LAST)))
    fields.append(((Text(f"P&L since start {pnl:+,.2f}", style=pnl_style), 4),
                   (Text(f"P&L {pnl:+,.2f}", style=pnl_style), 6.9), (Text(f"P&L {pnl:+,.0f}", style=pnl_style), LAST)))
    fields.append(_state_variants(header, snap))
    failed = [s.name for s in snap.strategies if s.status != "RUNNING"]
    if failed:
        style = f"bold {tone(header, 'error')}"
        fields.append(((Text(f"FAILED: {', '.join(failed)}", style=style), 6.5),
                       (Text(f"FAILED {len(failed)}", style=style), LAST)))
    if snap.store_error:
        fields.append(((Text(f"STORE ERROR: {snap.store_error}", style="bold"), 6.5),
                       (Text("STORE ERROR", style="bold"), LAST)))
    fields.append(_score_variants(header, snap, facts.threshold))
    return fields


def _state_variants(header: Static, snap: EngineSnapshot) -> tuple[Variant, ...]:
    state = snap.trading_state
    if state == "EMERGENCY_STOPPED":
        style = f"bold reverse {tone(header, 'error')}"
    elif state == "ACTIVE":
        style = f"bold {tone(header, 'success')}"
    else:
        style = f"bold {tone(header, 'warning')}"
    badge = Text(state_badge(state), style=style)
    scopes: list[dict[str, Any]] = list(snap.risk.get("scopes", ()))
    portfolio = next((s for s in scopes if s["scope"] == "portfolio"), None)
    why = left = ""
    if portfolio is not None:
        why = f"({portfolio['source']}: {portfolio['cause']})"
        if portfolio["until"] is not None:
            left = time_left(portfolio["until"], snap.ts, snap.speed)
    others = [s for s in scopes if s["scope"] != "portfolio"]
    rest = "  ".join(f"{s['scope']} {s['state']}" for s in others)
    if snap.risk.get("flattening"):
        rest += f"  closing {snap.risk['flattening']} position(s)"
    counted = f"+{len(others)} restricted" if others else ""
    variants = [(" ".join(part for part in words if part), worth) for words, worth in (
        ((why, left, rest.strip()), 5), ((why, left, counted), 7), ((left, counted), 8), ((), LAST))]
    return tuple((Text.assemble(badge, f" {words}" if words else ""), worth) for words, worth in variants)


def _score_variants(header: Static, snap: EngineSnapshot, threshold: float) -> tuple[Variant, ...]:
    score = snap.behaviour_score
    if score is None:
        return (Text("behaviour —"), 4.2), (Text(""), LAST)
    style = f"bold {tone(header, 'success' if score >= threshold else 'error')}"
    mark = "ok" if score >= threshold else "LOW"  # words too: NO_COLOR
    unexplained = f", {snap.behaviour_unexplained} unexplained" if snap.behaviour_unexplained else ""
    return ((Text(f"behaviour {score:.1f} {mark} (pass {threshold:g}{unexplained})", style=style), 4.2),
            (Text(f"beh {score:.0f} {mark}", style=style), 6), (Text(""), LAST))


class DeskHeader(Static):
    """#header: one line fitted to its width; its classes (-restricted, -emergency, -failed) colour the bar."""

    def __init__(self) -> None:
        super().__init__(id="header", markup=False)
        self._last: tuple[EngineSnapshot, HeaderFacts] | None = None
        self.text = Text()  # what it shows (tests and the tmux check read it)
        self.line = ""      # the same, as plain text

    def show(self, snap: EngineSnapshot, facts: HeaderFacts) -> None:
        self._last = (snap, facts)
        self._render_line()

    def on_resize(self) -> None:
        self._render_line()

    def _render_line(self) -> None:
        if self._last is None:
            return
        snap, facts = self._last
        text = fit(header_fields(self, snap, facts), self.content_size.width or 78)
        self.text, self.line = text, text.plain
        self.update(text, layout=False)  # one line tall whatever it says: a layout would repaint every panel
        state = snap.trading_state
        self.set_class(state == "EMERGENCY_STOPPED", "-emergency")
        self.set_class(state not in ("ACTIVE", "EMERGENCY_STOPPED"), "-restricted")
        self.set_class(bool(snap.store_error or any(s.status != "RUNNING" for s in snap.strategies)), "-failed")
