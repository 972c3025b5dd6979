"""Recordings of the market data a session saw, as JSON lines, for replay through a backtest.

The first line is a header; each further line is one event in the order the engine saw it. The header may say
which session the recording is of (its `session` object: RecordingOrigin), so a backtest can replay it with that
session's own config and say when it holds only the session's tail (recorded after a resume).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from engine.model.market import Bar, BookSnapshot, Heartbeat, MarketEvent, TradeTick, event_time
from engine.model.order import OrderSide

HEADER = {"format": "paperdesk-recording", "version": 1}
SUFFIXES = (".jsonl", ".ndjson")


def is_recording(path: str | Path) -> bool:
    """Recordings are told from bar files by their suffix."""
    return Path(path).suffix.lower() in SUFFIXES


class RecordingError(ValueError):
    """A recording that cannot be replayed as it is; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class RecordingOrigin:
    """The session a recording is of, as the recorder knew it when it started."""

    database: str      # the session's database file
    session_id: int
    config_json: str   # the config the session stores (engine/store/sessions.py config_text)
    first_seq: int     # the session's market event (its seq) the recording's first event is
    events_before: int  # the session's traded market events before it (warm-up bars, never recorded, not counted)
    restarts: int      # the session's restarts when the recording started

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> RecordingOrigin:
        if not isinstance(data, dict):
            raise ValueError(f"not an object: {data!r}")
        try:
            return cls(str(data["database"]), int(data["session_id"]), str(data["config_json"]),
                       int(data["first_seq"]), int(data["events_before"]), int(data["restarts"]))
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]!r}") from None


def event_to_json(event: MarketEvent) -> str:
    if type(event) is TradeTick:
        return json.dumps({"t": "trade", "ts": event.ts, "s": event.symbol, "p": event.price, "q": event.size,
                           "a": int(event.aggressor)})
    if type(event) is BookSnapshot:
        return json.dumps({"t": "book", "ts": event.ts, "s": event.symbol, "b": event.bids, "a": event.asks})
    if type(event) is Bar:
        return json.dumps({"t": "bar", "ts": event.ts, "s": event.symbol, "tf": event.timeframe, "o": event.open,
                           "h": event.high, "l": event.low, "c": event.close, "v": event.volume, "e": event.end})
    if type(event) is Heartbeat:
        return json.dumps({"t": "clock", "ts": event.ts})
    raise TypeError(f"no recording format for {type(event).__name__} events")


def event_from_json(text: str) -> MarketEvent:
    d = json.loads(text)
    kind = d["t"]
    if kind == "trade":
        return TradeTick(int(d["ts"]), d["s"], float(d["p"]), float(d["q"]), OrderSide(int(d["a"])))
    if kind == "book":
        return BookSnapshot(int(d["ts"]), d["s"], tuple((float(p), float(q)) for p, q in d["b"]),
                            tuple((float(p), float(q)) for p, q in d["a"]))
    if kind == "clock":
        return Heartbeat(int(d["ts"]))
    if kind == "bar":
        return Bar(int(d["ts"]), d["s"], d["tf"], float(d["o"]), float(d["h"]), float(d["l"]), float(d["c"]),
                   float(d["v"]), int(d["e"]))
    raise ValueError(f"unknown event type {kind!r}")


def write_header(out: TextIO, origin: RecordingOrigin | None = None) -> None:
    header: dict[str, Any] = dict(HEADER)
    if origin is not None:
        header["session"] = origin.to_json()
    out.write(json.dumps(header) + "\n")


def append_events(out: TextIO, events: Iterable[MarketEvent]) -> None:
    out.write("".join(event_to_json(e) + "\n" for e in events))


def save_recording(path: str | Path, events: Iterable[MarketEvent], origin: RecordingOrigin | None = None) -> None:
    with open(path, "w", encoding="utf-8") as out:
        write_header(out, origin)
        append_events(out, events)


def _open(path: Path) -> TextIO:
    try:
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _header(path: Path, handle: TextIO) -> dict[str, Any]:
    try:
        header = json.loads(handle.readline())
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != HEADER["format"]:
        raise RecordingError(f"{path}:1: not a paperdesk recording (expected the header {json.dumps(HEADER)})")
    if header.get("version") != HEADER["version"]:
        raise RecordingError(f"{path}:1: recording version {header.get('version')!r} is not supported "
                             f"(this paperdesk reads version {HEADER['version']})")
    return header


def recording_origin(path: str | Path) -> RecordingOrigin | None:
    """The session the recording's header names; None for a recording whose header names none."""
    path = Path(path)
    with _open(path) as handle:
        header = _header(path, handle)
    if "session" not in header:
        return None
    try:
        return RecordingOrigin.from_json(header["session"])
    except (ValueError, TypeError) as exc:
        raise RecordingError(f"{path}:1: the header's session is unreadable ({exc})") from None


def load_recording(path: str | Path) -> Iterator[MarketEvent]:
    """Events of a recording, checked as they are read: a bad line stops the replay with its number."""
    path = Path(path)
    with _open(path) as handle:
        _header(path, handle)
        last_ts = None
        for number, text in enumerate(handle, start=2):
            if not text.strip():
                continue
            try:
                event = event_from_json(text)
            except (ValueError, KeyError, TypeError) as exc:
                raise RecordingError(f"{path}:{number}: unreadable event ({exc}): {text.strip()[:120]}") from None
            ts = event_time(event)
            if last_ts is not None and ts < last_ts:
                raise RecordingError(f"{path}:{number}: timestamp {ts} is earlier than the previous event's "
                                     f"{last_ts}")
            last_ts = ts
            yield event
