"""The database schema as numbered migrations; PRAGMA user_version holds the last one applied.

A migration is appended, never edited: a database records how far it got, and an older paperdesk
refuses a newer database rather than touch it.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,               -- RUNNING until stopped; ABANDONED when replaced by --new-session
    started_wall_ns INTEGER NOT NULL,
    ended_wall_ns INTEGER,
    stop_reason TEXT,
    market_start_ns INTEGER NOT NULL,
    venue TEXT NOT NULL,
    config_json TEXT NOT NULL,          -- the exact validated config the session runs with
    config_hash TEXT NOT NULL,
    starting_cash REAL NOT NULL,
    restarts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    heartbeat_wall_ns INTEGER,
    market_ts INTEGER,
    equity REAL, cash REAL, realised REAL, unrealised REAL, fees REAL,
    writer_backlog INTEGER NOT NULL DEFAULT 0,
    writer_waits INTEGER NOT NULL DEFAULT 0,
    writer_wait_ms REAL NOT NULL DEFAULT 0,
    rows_committed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE instruments (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    symbol TEXT NOT NULL, base TEXT NOT NULL, quote TEXT NOT NULL,
    tick_size REAL NOT NULL, lot_size REAL NOT NULL, min_qty REAL NOT NULL, min_notional REAL NOT NULL,
    maker_fee REAL NOT NULL, taker_fee REAL NOT NULL,
    PRIMARY KEY (session_id, symbol)
);
CREATE TABLE orders (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    client_id TEXT NOT NULL,
    strategy TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, type TEXT NOT NULL,
    price REAL, stop_price REAL, tif TEXT NOT NULL, reduce_only INTEGER NOT NULL, created_ns INTEGER NOT NULL,
    status TEXT NOT NULL, filled_qty REAL NOT NULL, avg_fill_price REAL NOT NULL, reason TEXT NOT NULL,
    updated_ns INTEGER NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE INDEX orders_by_status ON orders(session_id, status);
CREATE TABLE order_events (
    session_id INTEGER NOT NULL, client_id TEXT NOT NULL, n INTEGER NOT NULL,
    ts INTEGER NOT NULL, status TEXT NOT NULL, filled_qty REAL NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id, n)
);
CREATE TABLE fills (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    fill_id TEXT NOT NULL, client_id TEXT NOT NULL, strategy TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, liquidity TEXT NOT NULL,
    ts INTEGER NOT NULL, basis TEXT NOT NULL, depth REAL NOT NULL, latency_ns INTEGER NOT NULL,
    mid_at_decision REAL NOT NULL, slippage_bps REAL NOT NULL,
    PRIMARY KEY (session_id, fill_id)
);
CREATE TABLE positions (
    session_id INTEGER NOT NULL, symbol TEXT NOT NULL,
    qty REAL NOT NULL, avg_price REAL NOT NULL, realised REAL NOT NULL, mark REAL NOT NULL,
    unrealised REAL NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (session_id, symbol)
);
CREATE TABLE equity (
    session_id INTEGER NOT NULL, ts INTEGER NOT NULL,
    equity REAL NOT NULL, cash REAL NOT NULL, realised REAL NOT NULL, unrealised REAL NOT NULL, fees REAL NOT NULL,
    PRIMARY KEY (session_id, ts)
);
CREATE TABLE decisions (
    session_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, strategy TEXT NOT NULL, symbol TEXT NOT NULL, signal TEXT NOT NULL,
    confidence REAL NOT NULL, reason TEXT NOT NULL, indicators TEXT NOT NULL, target REAL,
    order_id TEXT, denied_rule TEXT, denied_reason TEXT,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE market_data (
    session_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,   -- book | trade | bar
    price REAL, size REAL, side TEXT,                                -- trade
    bids TEXT, asks TEXT,                                            -- book: JSON [[price, size], ...]
    timeframe TEXT, open REAL, high REAL, low REAL, close REAL, volume REAL, end_ts INTEGER,  -- bar
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE venue_state (
    session_id INTEGER PRIMARY KEY, market_seq INTEGER NOT NULL, ts INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE strategies (
    session_id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, symbols TEXT NOT NULL,
    timeframe TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, error TEXT NOT NULL,
    updated_ns INTEGER NOT NULL,
    PRIMARY KEY (session_id, name)
);
CREATE TABLE state_events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL, wall_ns INTEGER NOT NULL, market_ts INTEGER,
    scope TEXT NOT NULL,                -- session | portfolio | strategy name
    kind TEXT NOT NULL,                 -- STARTED, RESUMED, STOPPED; trading states and breakers later
    detail TEXT NOT NULL
);
CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    session_id INTEGER, wall_ns INTEGER NOT NULL, command TEXT NOT NULL, args TEXT NOT NULL,
    reason TEXT NOT NULL, source TEXT NOT NULL, handled_wall_ns INTEGER, result TEXT
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    wall_ns INTEGER NOT NULL, session_id INTEGER, kind TEXT NOT NULL, ref TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
"""),
    (2, """
ALTER TABLE decisions ADD COLUMN denied_limit REAL;
ALTER TABLE decisions ADD COLUMN denied_value REAL;
ALTER TABLE commands ADD COLUMN market_seq INTEGER;   -- applied after this market event (replayed there on restart)
ALTER TABLE commands ADD COLUMN market_ts INTEGER;
ALTER TABLE commands ADD COLUMN ok INTEGER;
CREATE INDEX commands_by_session ON commands(session_id, id);
CREATE TABLE risk_state (
    session_id INTEGER PRIMARY KEY,
    wall_ns INTEGER NOT NULL, market_ts INTEGER,
    state TEXT NOT NULL,                -- the portfolio's trading state
    view TEXT NOT NULL                  -- JSON: every scope's state and cause, breaker gauges, phases
);
"""),
    (3, """
CREATE TABLE missed_market_data (   -- what the venue published while the engine's feed was down
    session_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    price REAL, size REAL, side TEXT, bids TEXT, asks TEXT,
    timeframe TEXT, open REAL, high REAL, low REAL, close REAL, volume REAL, end_ts INTEGER,
    after_seq INTEGER NOT NULL,      -- the market_data event it would have followed
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE behaviour_scores (     -- the live behaviour score, recomputed while the session runs
    session_id INTEGER NOT NULL, wall_ns INTEGER NOT NULL, market_ts INTEGER NOT NULL, market_seq INTEGER NOT NULL,
    score REAL, summary TEXT NOT NULL,   -- score is NULL while there is nothing to score; summary is JSON
    PRIMARY KEY (session_id, wall_ns)
);
"""),
    (4, """
CREATE TABLE venue_events (         -- what a venue holding our orders reported, in the order the engine heard it
    session_id INTEGER NOT NULL, n INTEGER NOT NULL,
    market_seq INTEGER NOT NULL,     -- heard before market event market_seq + 1 (replayed there on restart)
    kind TEXT NOT NULL,          -- a venue event, or SENT (venue_ref: its id there), CANCEL_ACK, MODIFY_ACK, OPENING
    client_id TEXT NOT NULL, ts INTEGER NOT NULL, reason TEXT NOT NULL, latency_ns INTEGER NOT NULL,
    fill_id TEXT, venue_ref TEXT,
    PRIMARY KEY (session_id, n)
);
"""),
    (5, """
-- sha256 of the strategy's source and canonical params (engine/strategy/loader.py strategy_fingerprint)
ALTER TABLE strategies ADD COLUMN fingerprint TEXT;
"""),
    (6, """
CREATE TABLE behaviour_series (     -- the live behaviour score over time, for the console's sparkline
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL, wall_ns INTEGER NOT NULL, market_ts INTEGER NOT NULL, market_seq INTEGER NOT NULL,
    strategy TEXT,                   -- NULL: the whole portfolio's score
    score REAL,                      -- NULL while there is nothing to score
    signal_agreement REAL, timing REAL, count_ratio REAL, matched_share REAL,   -- its components, 0-100
    unexplained INTEGER              -- differences nothing recorded explains
);
CREATE INDEX behaviour_series_by_strategy ON behaviour_series(session_id, strategy, market_ts);
INSERT INTO behaviour_series (session_id, wall_ns, market_ts, market_seq, strategy, score, signal_agreement, timing,
                              count_ratio, matched_share, unexplained)
    SELECT session_id, wall_ns, market_ts, market_seq, NULL, score,
           json_extract(summary, '$.components.signal_agreement'), json_extract(summary, '$.components.timing'),
           json_extract(summary, '$.components.count_ratio'), json_extract(summary, '$.components.matched_share'),
           json_extract(summary, '$.unexplained')
    FROM behaviour_scores ORDER BY session_id, wall_ns;
-- sessions stored before every row was chained (engine/store/audit.py): the chain covers their events and what they
-- write from now on, not their earlier rows
CREATE TABLE audit_legacy (session_id INTEGER PRIMARY KEY);
INSERT INTO audit_legacy SELECT id FROM sessions;
"""),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
