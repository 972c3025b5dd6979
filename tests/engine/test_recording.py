import pytest

from engine.data.recording import RecordingError, load_recording, save_recording
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import OrderSide

EVENTS = [
    BookSnapshot(1, "BTC/USDT", ((99.5, 1.0), (99.0, 2.5)), ((100.5, 0.7),)),
    TradeTick(1, "BTC/USDT", 100.5, 0.25, OrderSide.BUY),
    TradeTick(2, "ETH/USDT", 3000.1, 1.5, OrderSide.SELL),
    Bar(0, "BTC/USDT", "1m", 100.0, 101.0, 99.0, 100.5, 12.0, 3),
]


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "rec.jsonl"
    save_recording(path, EVENTS)
    assert list(load_recording(path)) == EVENTS


def test_a_bad_line_stops_the_replay_with_its_number(tmp_path):
    path = tmp_path / "rec.jsonl"
    save_recording(path, EVENTS)
    lines = path.read_text().splitlines()
    lines[2] = '{"t": "trade", "ts": 1, "s": "BTC/USDT"}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordingError, match=r"rec.jsonl:3: unreadable event"):
        list(load_recording(path))


def test_events_out_of_time_order_are_refused(tmp_path):
    path = tmp_path / "rec.jsonl"
    save_recording(path, [EVENTS[2], EVENTS[1]])
    with pytest.raises(RecordingError, match=r":3: timestamp 1 is earlier"):
        list(load_recording(path))


def test_not_a_recording(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("timestamp,open\n")
    with pytest.raises(RecordingError, match="not a paperdesk recording"):
        list(load_recording(path))
    path.write_text('{"format": "paperdesk-recording", "version": 99}\n')
    with pytest.raises(RecordingError, match="version 99 is not supported"):
        list(load_recording(path))
