"""A database written before the risk manager (schema 1) upgrades in place, to the latest schema, when a session
opens it."""

import json
import sqlite3

import pytest

from engine.session import PaperSession
from engine.store.commands import queue_command
from engine.store.database import StoreError
from engine.store.rows import canonical_json
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION
from engine.store.sessions import config_hash
from tests.conftest import make_config
from tests.store.helpers import query, stepped_session


async def test_a_schema_1_session_resumes_on_the_latest_schema_and_takes_commands(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = make_config()
    await stepped_session(db, config, steps=199)
    fills = query(db, "SELECT COUNT(*) FROM fills")[0][0]

    # take it back to what schema 1 wrote: the tables and columns migrations 2 to 6 added go
    conn = sqlite3.connect(db)
    conn.executescript("DROP TABLE audit_legacy; DROP TABLE behaviour_series; "
                       "ALTER TABLE strategies DROP COLUMN fingerprint; "
                       "DROP TABLE venue_events; DROP TABLE missed_market_data; DROP TABLE behaviour_scores; "
                       "DROP TABLE risk_state; DROP INDEX commands_by_session; "
                       "ALTER TABLE decisions DROP COLUMN denied_limit; "
                       "ALTER TABLE decisions DROP COLUMN denied_value; "
                       "ALTER TABLE commands DROP COLUMN market_seq; ALTER TABLE commands DROP COLUMN market_ts; "
                       "ALTER TABLE commands DROP COLUMN ok; PRAGMA user_version = 1;")
    conn.close()
    assert MIGRATIONS[0][0] == 1 and SCHEMA_VERSION == 6
    try:
        queue_command(db, "halt", {}, "")
        raise AssertionError("a schema 1 database must not take commands")
    except StoreError as exc:
        assert "older paperdesk (schema 1)" in str(exc) and "paperdesk run" in str(exc)

    resumed = PaperSession(config, db_path=db)
    await resumed.open()
    assert query(db, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert resumed.recovered.fills == fills
    await resumed.close()
    command_id, session_id = queue_command(db, "halt", {}, "after the upgrade")
    assert session_id == 1 and command_id >= 1


async def test_a_session_stored_before_new_settings_existed_resumes_with_their_defaults(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = make_config()
    await stepped_session(db, config, steps=49)
    # what an older paperdesk stored: no [validation] or [promotion], no venue.slippage or feed_gaps
    stored = json.loads(query(db, "SELECT config_json FROM sessions")[0][0])
    for key in ("validation", "promotion"):
        del stored[key]
    del stored["venue"]["slippage"], stored["venue"]["feed_gaps"]
    old_text = canonical_json(stored)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE sessions SET config_json = ?, config_hash = ?", (old_text, config_hash(old_text)))
    conn.commit()
    conn.close()
    resumed = PaperSession(config, db_path=db)
    await resumed.open()
    assert resumed.recovered is not None and resumed.session_id == 1
    await resumed.close()
    changed = PaperSession(make_config(venue={"seed": 99}), db_path=db)
    with pytest.raises(StoreError, match="ran with another config"):
        await changed.open()


async def test_a_session_stored_under_the_looser_rules_of_before_resumes_validates_and_takes_commands(tmp_path):
    """Before strict types a config could say fast = 3.0 where a whole number is meant, and a start price under 100
    ticks passed: the session stored it so. The stricter rules are for new configs, not for what already ran."""
    from engine.validation.validate import validate

    db = tmp_path / "desk.sqlite"
    config = make_config()
    await stepped_session(db, config, steps=400)
    stored = json.loads(query(db, "SELECT config_json FROM sessions")[0][0])
    stored["strategies"][0]["params"]["fast"] = 3.0
    stored["instruments"][0]["start_price"] = stored["instruments"][0]["tick_size"] * 50
    old_text = canonical_json(stored)
    assert '"fast":3.0' in old_text
    conn = sqlite3.connect(db)
    conn.execute("UPDATE sessions SET config_json = ?, config_hash = ?", (old_text, config_hash(old_text)))
    conn.commit()
    conn.close()
    report = validate(db)  # read back as that version read it: the twin runs
    assert report.score is not None and report.market_events > 0
    queue_command(db, "pause", {"strategy": config.strategies[0].name}, "a stored config read for the check")
    changed = make_config()
    changed.instruments[0].start_price = stored["instruments"][0]["start_price"]
    resumed = PaperSession(changed, db_path=db)  # the same config, written as today's rules want (fast = 3)
    await resumed.open()
    assert resumed.recovered is not None and resumed.session_id == 1
    await resumed.close()


def test_a_config_difference_of_type_alone_is_named():
    from engine.store.sessions import config_differences

    assert config_differences('{"a":{"fast":10.0}}', '{"a":{"fast":10}}') == ["a.fast: 10.0 -> 10"]


async def test_evaluate_says_why_each_session_that_ran_the_strategy_was_left_out(tmp_path):
    from engine.validation.promotion import evaluate
    from engine.validation.records import ValidationInputError

    db = tmp_path / "desk.sqlite"
    config = make_config()
    await stepped_session(db, config, steps=60)
    stored = json.loads(query(db, "SELECT config_json FROM sessions")[0][0])
    stored["venue"]["speed"] = -1  # a config no paperdesk could have run: the twin cannot be rebuilt
    conn = sqlite3.connect(db)
    conn.execute("UPDATE sessions SET config_json = ?", (canonical_json(stored),))
    conn.commit()
    conn.close()
    with pytest.raises(ValidationInputError) as refused:
        evaluate(db, config.strategies[0].name)
    message = str(refused.value)
    assert "no session that ran it could be evaluated" in message
    assert "session 1 left out" in message and "venue.speed = -1" in message
