"""The detail, behaviour and journal screens in a real Textual app over a LocalDesk of a real stopped session: what
they show once their worker has read the database, escape closing them, and a session that is not saved."""

import time

from textual.app import App
from textual.widgets import DataTable, Static

from console.app import PaperdeskApp
from console.desk import LocalDesk
from console.screens import journal
from console.screens.behaviour import BehaviourScreen
from console.screens.detail import BreakerDetailScreen, OrderDetailScreen, StrategyDetailScreen
from console.screens.journal import JournalScreen
from console.widgets.cells import sparkline
from console.widgets.strategies import TREND_POINTS
from engine.session import PaperSession
from tests.console.test_desk_reads import desk_session  # noqa: F401  (the module's session, as a fixture)
from tests.store.helpers import STEP_NS, query, stepped_session
from tests.validation.helpers import venue_config

WAIT = 120.0  # seconds: a validation replays the session, and the machine is shared


async def wait_until(pilot, condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def text_of(screen, selector):
    return str(screen.query_one(selector, Static).render())


def rows_of(screen, selector):
    table = screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_screen(app, pilot, screen):
    await app.push_screen(screen)
    await pilot.pause()
    return screen


async def test_order_detail_shows_the_decision_state_history_and_fills_and_escape_closes_it(desk_session):  # noqa: F811
    db, session, _ = desk_session
    client_id = query(db, "SELECT client_id FROM fills WHERE strategy = 'sma_btc' ORDER BY ts LIMIT 1")[0][0]
    app = App()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_screen(app, pilot, OrderDetailScreen(LocalDesk(session), client_id))
        await wait_until(pilot, lambda: screen.query_one("#fills", DataTable).row_count, "the order's fills")
        shown = text_of(screen, "#order")
        assert f"Order {client_id}" in shown and "The decision that made it" in shown and "indicators" in shown
        states = [row[1] for row in rows_of(screen, "#states")]
        stored = [s for (s,) in query(db, "SELECT status FROM order_events WHERE client_id = ? ORDER BY n",
                                      (client_id,))]
        assert states == stored and states[-1] == "FILLED"
        fills = query(db, "SELECT fill_id, liquidity, basis FROM fills WHERE client_id = ? ORDER BY ts", (client_id,))
        assert [(row[1], row[5], row[6], row[9]) for row in rows_of(screen, "#fills")] == [
            (fill_id, liquidity, basis, "90000") for fill_id, liquidity, basis in fills]  # latency in ms
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is not screen, "escape to close the screen")


async def test_strategy_detail_shows_parameters_last_decision_state_and_round_trips(desk_session):  # noqa: F811
    db, session, config = desk_session
    view = {s.name: s for s in session.snapshot().strategies}["sma_btc"]
    app = App()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_screen(app, pilot, StrategyDetailScreen(LocalDesk(session), "sma_btc"))
        await wait_until(pilot, lambda: "As the session runs it" in text_of(screen, "#strategy"), "the strategy")
        shown = text_of(screen, "#strategy")
        params = next(s for s in config.strategies if s.name == "sma_btc").params
        assert params and all(f"{k}={v}" in shown for k, v in params.items())
        reason = query(db, "SELECT reason FROM decisions WHERE strategy = 'sma_btc' ORDER BY seq DESC")[0][0]
        assert "Last decision" in shown and reason in shown
        now = text_of(screen, "#now")
        assert view.state in now and f"{view.pnl:+,.2f}" in now
        assert screen.query_one("#trades", DataTable).row_count == view.trades > 0


async def test_breaker_detail_shows_its_settings_and_its_trips(desk_session):  # noqa: F811
    db, session, _ = desk_session
    scope = query(db, "SELECT scope FROM state_events WHERE detail LIKE '%(consecutive_losses: %'")[0][0]
    app = App()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_screen(app, pilot, BreakerDetailScreen(LocalDesk(session), "consecutive_losses", scope))
        await wait_until(pilot, lambda: screen.query_one("#trips", DataTable).row_count, "the breaker's trips")
        assert "consecutive_losses" in text_of(screen, "#settings") and "losses_cooldown_hours" in text_of(
            screen, "#settings")
        rows = rows_of(screen, "#trips")
        assert all(row[1] == scope and "(consecutive_losses: " in row[3] for row in rows)
        assert "COOLDOWN" in [row[2] for row in rows]
        assert f"Breaker consecutive_losses on {scope}" in text_of(screen, "#gauge")


async def test_behaviour_lists_components_trend_and_differences_unexplained_first(desk_session):  # noqa: F811
    db, session, config = desk_session
    app = App()
    async with app.run_test(size=(180, 50)) as pilot:
        screen = await open_screen(app, pilot, BehaviourScreen(LocalDesk(session)))
        differences = screen.query_one("#differences", DataTable)
        await wait_until(pilot, lambda: differences.row_count, "the validation's differences")
        assert not screen.query_one("#validation").loading
        rows = rows_of(screen, "#differences")
        causes = [row[0] for row in rows]
        unexplained = causes.count("UNEXPLAINED")
        assert causes[:unexplained] == ["UNEXPLAINED"] * unexplained and 0 < unexplained < len(causes)
        assert ["once_sol", "SOL/USDT", "paper only"] in [row[2:5] for row in rows[:unexplained]]
        lone = screen.differences[0]  # the first row is selected: once_sol's buy, which no replay reproduces
        why = text_of(screen, "#why")
        assert lone.strategy == "once_sol" and not lone.causes and lone.tried
        assert why.startswith("paper only: once_sol SOL/USDT") and f"\n  {lone.proof}\n" in why
        assert lone.proof.startswith("unexplained: none of") and "proven by replay" not in why
        assert f"condition sets tried ({len(lone.tried)})" in why and all(f"tried: {t}\n" in why for t in lone.tried)
        assert "hints (not proven): nothing recorded" in why  # once_sol's twin held on the same bars, no hint
        proven = [d for d in screen.differences if d.causes]  # last, each row naming its causes' kinds
        assert causes[len(rows) - len(proven):] == [", ".join(dict.fromkeys(c.kind for c in d.causes)) for d in proven]
        assert any("latency" in cause for cause in causes[len(rows) - len(proven):]), causes
        differences.move_cursor(row=len(rows) - 1)
        await wait_until(pilot, lambda: not text_of(screen, "#why").startswith("paper only: once_sol"), "the last")
        last = screen.differences[-1]
        why = text_of(screen, "#why")
        assert rows[-1][7] == f"proven by replay: {last.causes[0].text}"
        assert all(f"cause (proven by replay) [{c.kind}] " in why and c.text in why for c in last.causes)
        assert last.hints and all(f"hint (not proven) [{h.kind}] " in why and h.text in why for h in last.hints)
        assert "tried:" not in why and "unexplained" not in why
        components = rows_of(screen, "#components")
        assert [row[0] for row in components] == ["(all)", *(s.name for s in config.strategies)]
        columns = [str(c.label) for c in screen.query_one("#components", DataTable).columns.values()]
        assert columns[2:6] == ["signal_agreement", "timing", "count_ratio", "matched_share"]
        assert "behaviour score" in text_of(screen, "#score")
        assert (f"({len(proven)} proven by replay, {unexplained} unexplained, "
                f"{len(rows) - len(proven) - unexplained} not proven)") in text_of(screen, "#score")
        scores = query(db, "SELECT score FROM behaviour_scores WHERE score IS NOT NULL ORDER BY wall_ns")
        assert scores and f"Live score trend ({len(scores)} points)" in text_of(screen, "#trend-label")
        assert f"last {scores[-1][0]:.2f}" in text_of(screen, "#trend-label")
        differences.clear()
        await pilot.press("u")  # validates again
        await wait_until(pilot, lambda: differences.row_count == len(rows), "the second validation")


async def test_behaviour_shows_why_a_session_cannot_be_validated(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, venue_config(), steps=1)  # no bar closed: no decision
    app = App()
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_screen(app, pilot, BehaviourScreen(LocalDesk(session)))
        await wait_until(pilot, lambda: "Cannot validate" in text_of(screen, "#message"), "the refusal")
        assert "has no decisions yet" in text_of(screen, "#message")
        assert not screen.query_one("#validation").loading


async def test_behaviour_says_not_proven_when_the_replays_are_over_the_proof_budget(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = venue_config(latency_ms=90_000.0)  # paper's orders late: differences a replay would look into
    config = config.model_copy(update={"validation": config.validation.model_copy(update={"proof_budget_s": 0.0})})
    session = await stepped_session(db, config)
    app = App()
    async with app.run_test(size=(180, 50)) as pilot:
        screen = await open_screen(app, pilot, BehaviourScreen(LocalDesk(session)))
        differences = screen.query_one("#differences", DataTable)
        await wait_until(pilot, lambda: differences.row_count, "the validation's differences")
        rows = rows_of(screen, "#differences")
        first = screen.differences[0]
        assert [row[0] for row in rows] == ["NOT PROVEN"] * len(rows) and first.proof.startswith("not proven: ")
        assert rows[0][7] == first.proof.removeprefix("not proven: ")
        why = text_of(screen, "#why")
        assert f"\n  {first.proof}\n" in why and "proven by replay" not in why and "tried:" not in why
        assert f"(0 proven by replay, 0 unexplained, {len(rows)} not proven)" in text_of(screen, "#score")


async def test_journal_shows_holds_with_the_twin_beside_and_switches_and_pages(desk_session, monkeypatch):  # noqa: F811
    db, session, _ = desk_session
    monkeypatch.setattr(journal, "PAGE", 10)
    app = App()
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_screen(app, pilot, JournalScreen(LocalDesk(session), None))
        table = screen.query_one("#journal", DataTable)

        def twin_column():
            return [row[3] for row in rows_of(screen, "#journal")]

        await wait_until(pilot, lambda: table.row_count and journal.TWIN_PENDING not in twin_column(),
                         "a page with the twin's side")
        assert "Decision journal of sma_btc" in text_of(screen, "#heading")
        newest = query(db, "SELECT seq, signal, reason FROM decisions WHERE strategy = 'sma_btc' ORDER BY seq DESC "
                           "LIMIT 10")
        assert [(row[2], row[5]) for row in rows_of(screen, "#journal")] == [(s, r) for _, s, r in newest]
        assert "HOLD" in [row[2] for row in rows_of(screen, "#journal")]
        assert all(cell.startswith(("=", "≠")) for cell in twin_column())
        await pilot.press("greater_than_sign")
        older = query(db, "SELECT signal, reason FROM decisions WHERE strategy = 'sma_btc' ORDER BY seq DESC "
                          "LIMIT 10 OFFSET 10")
        await wait_until(pilot, lambda: "page 2" in text_of(screen, "#heading"), "the older page")
        assert [(row[2], row[5]) for row in rows_of(screen, "#journal")] == older
        await pilot.press("less_than_sign")
        await wait_until(pilot, lambda: "page 1" in text_of(screen, "#heading"), "the newest page again")
        await pilot.press("right_square_bracket", "right_square_bracket")
        await wait_until(pilot, lambda: "Decision journal of once_sol" in text_of(screen, "#heading"),
                         "the once_sol journal")
        while "BUY" not in [row[2] for row in rows_of(screen, "#journal")]:
            page = text_of(screen, "#heading")
            await pilot.press("greater_than_sign")
            await wait_until(pilot, lambda page=page: text_of(screen, "#heading") != page, "an older page")
        buy = next(row for row in rows_of(screen, "#journal") if row[2] == "BUY")
        assert buy[3].startswith("≠") and "paper only" in buy[3] and buy[6].startswith("order ")


async def test_a_session_that_is_not_saved_says_so_and_shows_the_engine_picture():
    session = PaperSession(venue_config())
    await session.open()
    start = session.clock.now_ns()
    for i in range(1, 400):
        session.step(start + i * STEP_NS)
    client_id = session.engine.fills[-1].client_id  # among the snapshot's recent fills
    desk = LocalDesk(session)
    assert desk.db_path is None
    app = App()
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_screen(app, pilot, OrderDetailScreen(desk, client_id))
        assert "not saved" in text_of(screen, "#message")
        fills = [row[1] for row in rows_of(screen, "#fills")]
        assert fills and fills == [f.fill_id for f in session.engine.fills[-20:] if f.client_id == client_id]
        await pilot.press("escape")
        for other in (BehaviourScreen(desk), JournalScreen(desk, None), StrategyDetailScreen(desk, "sma_btc")):
            screen = await open_screen(app, pilot, other)
            assert "not saved" in text_of(screen, "#message")
            await pilot.press("escape")
        screen = await open_screen(app, pilot, StrategyDetailScreen(desk, "sma_btc"))
        assert "trading state" in text_of(screen, "#now")



async def test_the_console_opens_each_screen_from_its_keys_over_a_stopped_session(desk_session):  # noqa: F811
    db, session, config = desk_session
    app = PaperdeskApp(LocalDesk(session), config)
    async with app.run_test(size=(200, 60)) as pilot:
        strategies = app.query_one("#strategies", DataTable)
        await wait_until(pilot, lambda: strategies.row_count == len(config.strategies), "the strategies table")
        strategies.focus()
        strategies.move_cursor(row=[str(k.value) for k in strategies.rows].index("rsi_eth"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StrategyDetailScreen), "the strategy's detail")
        await wait_until(pilot, lambda: "As the session runs it" in text_of(app.screen, "#strategy"), "its config")
        assert "Strategy rsi_eth now" in text_of(app.screen, "#now")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, StrategyDetailScreen), "escape")
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen), "the journal")
        await wait_until(pilot, lambda: app.screen.query_one("#journal", DataTable).row_count, "its decisions")
        assert "Decision journal of rsi_eth" in text_of(app.screen, "#heading")
        shown = [row[6] for row in rows_of(app.screen, "#journal")]
        newest = query(db, "SELECT denied_rule FROM decisions WHERE strategy = 'rsi_eth' ORDER BY seq DESC LIMIT ?",
                       (journal.PAGE,))
        assert [cell.split(":")[0] if cell.startswith("refused ") else "" for cell in shown] == [
            "" if rule is None else f"refused {rule}" for (rule,) in newest]
        assert any(rule is not None for (rule,) in newest), "the cooldown refuses rsi_eth's entries"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, JournalScreen), "escape")
        breakers = app.query_one("#breakers", DataTable)
        tripped = query(db, "SELECT scope FROM state_events WHERE detail LIKE '%(consecutive_losses: %'")[0][0]
        keys = [str(k.value) for k in breakers.rows]
        gauge = next(i for i, key in enumerate(keys) if "consecutive_losses" in key and tripped in key)
        breakers.focus()
        breakers.move_cursor(row=gauge)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, BreakerDetailScreen), "the breaker's detail")
        await wait_until(pilot, lambda: app.screen.query_one("#trips", DataTable).row_count, "its trips")
        await pilot.press("escape")
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BehaviourScreen), "the behaviour screen")
        await wait_until(pilot, lambda: app.screen.query_one("#differences", DataTable).row_count, "its differences")
        assert str(app.screen.query_one("#differences", DataTable).get_row_at(0)[0]) == "UNEXPLAINED"


async def test_the_strategies_panel_shows_each_strategy_s_live_score_and_its_own_trend(desk_session):  # noqa: F811
    db, session, config = desk_session
    names = [s.name for s in config.strategies]
    series = {name: [s for (s,) in query(db, "SELECT score FROM behaviour_series WHERE strategy = ? AND score IS NOT "
                                             "NULL ORDER BY id", (name,))] for name in names}
    assert all(series.values()) and len({scores[-1] for scores in series.values()}) > 1, series
    app = PaperdeskApp(LocalDesk(session), config)
    async with app.run_test(size=(200, 60)) as pilot:
        strategies = app.query_one("#strategies", DataTable)
        columns = [str(c.label) for c in strategies.columns.values()]
        score, trend = columns.index("behaviour"), columns.index("trend")
        await wait_until(pilot, lambda: strategies.row_count == len(names) and all(
            str(strategies.get_row(name)[trend]) for name in names), "each strategy's trend")
        for name, scores in series.items():
            row = [str(cell) for cell in strategies.get_row(name)]
            low = "" if scores[-1] >= config.validation.min_score else " LOW"
            assert row[score] == f"{scores[-1]:.1f}{low}" and row[trend] == sparkline(scores[-TREND_POINTS:]), row
        assert "portfolio behaviour" in str(strategies.border_subtitle)
        assert "per strategy: not in" not in str(strategies.border_subtitle)
