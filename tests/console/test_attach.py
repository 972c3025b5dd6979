"""`paperdesk console --db`: the console attached to a session another process runs, through its database."""

import copy
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest

from console.app import PaperdeskApp
from console.attach import AttachedDesk, attach, stored_config
from console.screens.confirm import ConfirmScreen
from engine.store.commands import BadCommand, CommandRefused, queue_command
from engine.store.database import StoreError, migrate
from engine.store.schema import SCHEMA_VERSION
from tests.conftest import BASE_CONFIG, write_config
from tests.console.test_app import event_texts, header, own_config_home, wait_until  # noqa: F401 (a fixture)
from tests.console.test_operator_commands import REPO, paperdesk, start, status, wait_for
from tests.store.helpers import query

# rests a buy far under the market on every bar: orders that stay open for the attached console to see and cancel
RESTING = '''
from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams


class FarBids(Strategy):
    Params = StrategyParams

    def on_bar(self, bar: Bar) -> None:
        self.buy(bar.symbol, 0.001, price=round(bar.close * 0.8, 2), reason="rests far below the market")
'''


def resting_config(tmp_path):
    (tmp_path / "far_bids.py").write_text(RESTING, encoding="utf-8")
    data = copy.deepcopy(BASE_CONFIG)
    data["strategies"].append({"name": "far_btc", "kind": "far_bids.py:FarBids", "symbols": ["BTC/USDT"],
                               "timeframe": "1m", "params": {}})
    return write_config(tmp_path / "c.toml", data)


def run_for(config, db, seconds: str, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config), "--db",
                             str(db), "--duration", seconds, *extra], cwd=REPO, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def logged(desk: AttachedDesk, needle: str) -> list[str]:
    return [line.text for line in desk.snapshot().event_log if needle in line.text]


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0


def test_attached_desk_follows_a_headless_session_commands_it_and_stays_with_it_when_it_stops(tmp_path):
    config = resting_config(tmp_path)
    db = tmp_path / "desk.sqlite"
    proc = start(config, db, tmp_path / "run.txt")
    desk = None
    try:
        wait_for(lambda: db.exists() and query(db, "SELECT name FROM sqlite_master WHERE name = 'risk_state'")
                 and query(db, "SELECT COUNT(*) FROM orders WHERE status = 'ACCEPTED'")[0][0] >= 2
                 and query(db, "SELECT COUNT(*) FROM fills")[0][0] >= 3, "fills and resting orders", timeout=120)
        desk = attach(db, poll_seconds=0.1)
        assert desk.attached and desk.session_id == 1 and desk.link().startswith("ATTACHED ")
        assert desk.confirm_first("halt") is None  # it runs: a command goes at once
        resting = wait_for(lambda: desk.snapshot().open_order_list, "open orders in the snapshot")
        target = resting[0].client_id
        assert resting[0].strategy == "far_btc" and resting[0].side == "BUY" and resting[0].price is not None

        ok, text = desk.command("cancel", {"order": target}, "", "console tester")
        assert ok and text.startswith("queued (command ") and "applies within a second" in text, text
        line = wait_for(lambda: logged(desk, " cancel from console tester, attached from "), "the cancel's answer")
        assert f"cancel of {target}" in line[0] and "REFUSED" not in line[0], line
        wait_for(lambda: target not in {o.client_id for o in desk.snapshot().open_order_list}, "the order gone")
        wait_for(lambda: logged(desk, f"order {target} far_btc BUY 0.001 BTC/USDT LIMIT CANCELED"), "its cancel event")

        ok, text = desk.command("halt", {}, "drill", "console tester")
        assert ok, text
        line = wait_for(lambda: logged(desk, " halt from console tester, attached from "), "the other process's answer")
        assert "ACTIVE -> HALTED (operator: drill)" in line[0]
        wait_for(lambda: desk.snapshot().trading_state == "HALTED", "the saved risk view")
        snap = desk.snapshot()
        assert all(s.state == "HALTED" for s in snap.strategies)  # the portfolio's halt is each strategy's state
        assert any(what == "HALTED" for _, what in snap.markers)
        refused = desk.command("flatten", {"symbol": "DOGE/USDT"}, "", "console tester")
        assert refused[0] is False and "does not trade it" in refused[1]
    finally:
        stop(proc)
    assert desk is not None
    wait_for(lambda: desk.link().startswith("NOT RUNNING: last saved "), "the stopped session said")
    assert desk.link().endswith(", read-only")
    # what the attached desk shows is what `paperdesk status` shows of the stopped session
    wait_for(lambda: logged(desk, "session stopped"), "the session's stop in the log")
    view = status(db)
    snap = desk.snapshot()
    assert [(p.symbol, p.qty, p.avg_price, p.mark) for p in snap.positions] == \
        [(p["symbol"], p["qty"], p["avg_price"], p["mark"]) for p in view["positions"]]
    assert [(o.client_id, o.status, o.price) for o in snap.open_order_list] == \
        [(o["client_id"], o["status"], o["price"]) for o in view["open_orders"]]
    assert snap.equity == view["session"]["equity"] and snap.equity_series[-1] == view["session"]["equity"]
    assert (snap.orders, snap.fills) == (view["counts"]["orders"], view["counts"]["fills"])
    assert [f.fill_id for f in snap.recent_fills][::-1][:len(view["last_fills"])] == \
        [f["fill_id"] for f in view["last_fills"]]
    # each strategy's trades rebuilt from the fills account for the whole P&L
    assert sum(s.pnl for s in snap.strategies) == pytest.approx(snap.equity - snap.starting_cash, abs=1e-6)
    assert sum(s.trades for s in snap.strategies) > 0
    seqs = [line.seq for line in snap.event_log]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    # nothing runs: the operator is asked first, and a confirmed command waits in the queue for the next run
    question = desk.confirm_first("resume")
    assert question == f"no session is running on {db}: queue resume for when it resumes?"
    ok, text = desk.command("resume", {}, "back from lunch", "console tester")
    assert ok and f"applies when session 1 resumes (paperdesk run --db {db})" in text, text
    before = desk.snapshot().event_log[-1].seq
    rerun = run_for(config, db, "3")
    assert "back from lunch" in rerun.stdout
    assert status(db)["risk"]["state"] == "ACTIVE"
    # the restart was followed: the resumed run's lines came after what was shown, numbered on
    wait_for(lambda: logged(desk, "session resumed"), "the restart in the log")
    line = wait_for(lambda: logged(desk, " resume from console tester, attached from "), "the queued resume applied")
    assert "(back from lunch)" in line[0] and "REFUSED" not in line[0]
    assert all(line.seq > before for line in desk.snapshot().event_log if "session resumed" in line.text)
    wait_for(lambda: desk.snapshot().restarts == 1 and desk.link().startswith("NOT RUNNING"), "the run's end")
    assert any(what == "restart 1" for _, what in desk.snapshot().markers)
    desk.stop("test over")


def test_a_new_session_on_the_database_is_followed_and_an_ended_one_takes_no_command(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    run_for(config, db, "2")
    desk = attach(db, poll_seconds=0.1)
    pinned = attach(db, 1, poll_seconds=0.1)
    try:
        assert desk.session_id == 1 and not desk.running
        last = desk.snapshot().event_log[-1].seq
        run_for(config, db, "2", "--new-session")
        wait_for(lambda: desk.session_id == 2, "the new session followed")
        note = wait_for(lambda: [line for line in desk.snapshot().event_log if "now showing it" in line.text],
                        "the switch said in the log")
        assert note[0].seq > last and "session 1 ended" in note[0].text
        assert all(line.seq > last for line in desk.snapshot().event_log)  # the app appends them: never renumbered
        assert desk.snapshot().session_id == 2
        wait_for(lambda: pinned.snapshot().session_id == 1 and pinned._current == 2, "the pinned desk's poll")
        ok, text = pinned.command("halt", {}, "", "console tester")
        assert not ok and "session 1 has ended (session 2 is the database's current one)" in text
        assert query(db, "SELECT COUNT(*) FROM commands")[0][0] == 0
        # a run killed while attached: the desk says so (no STOPPED line will come) and shows it read-only
        proc = start(config, db, tmp_path / "run3.txt")
        try:
            wait_for(lambda: desk.running and desk.snapshot().restarts == 1, "the resumed run seen", timeout=120)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        killed = wait_for(lambda: logged(desk, "session 2: no process runs it any more (crashed or killed)"),
                          "the kill said")
        assert "shown read-only until `paperdesk run --db" in killed[0] and desk.link().startswith("NOT RUNNING")
    finally:
        desk.stop("test over")
        pinned.stop("test over")


def test_commands_that_cannot_apply_are_refused_before_they_are_queued(tmp_path):
    config = resting_config(tmp_path)
    db = tmp_path / "desk.sqlite"
    run_for(config, db, "4")
    filled = query(db, "SELECT client_id FROM orders WHERE status = 'FILLED' LIMIT 1")[0][0]
    resting = query(db, "SELECT client_id FROM orders WHERE status = 'ACCEPTED' LIMIT 1")[0][0]
    with pytest.raises(BadCommand, match="symbol XRP/USDT: session 1 does not trade it"):
        queue_command(db, "flatten", {"symbol": "XRP/USDT"}, "", check=True)
    with pytest.raises(BadCommand, match="order O9: session 1 has no order by that id"):
        queue_command(db, "cancel", {"order": "O9"}, "", check=True)
    with pytest.raises(BadCommand, match="cancel needs an order id or a strategy"):
        queue_command(db, "cancel", {}, "", check=True)
    with pytest.raises(BadCommand, match="--strategy nope"):
        queue_command(db, "cancel", {"strategy": "nope"}, "", check=True)
    with pytest.raises(CommandRefused, match=f"order {filled} is FILLED: nothing to cancel"):
        queue_command(db, "cancel", {"order": filled}, "", check=True)
    assert query(db, "SELECT COUNT(*) FROM commands")[0][0] == 0
    queue_command(db, "cancel", {"order": resting}, "", check=True)
    queue_command(db, "flatten", {"symbol": "ETH/USDT"}, "", check=True, source="console tester")
    assert query(db, "SELECT command, source FROM commands ORDER BY id")[1] == ("flatten", "console tester")


def test_what_status_refuses_the_console_refuses_with_the_same_words(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE prices (ts INTEGER)")
    newer = tmp_path / "newer.sqlite"
    migrate(newer)
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for db, words in ((text, "not an SQLite file"), (other, "not a paperdesk one"), (newer, "a newer paperdesk")):
        console = paperdesk("console", "--db", str(db))
        assert console.returncode == 2 and words in console.stderr, console.stderr
        assert console.stderr == paperdesk("status", "--db", str(db)).stderr
        with pytest.raises(StoreError, match=words):
            attach(db)
    empty = tmp_path / "empty.sqlite"
    migrate(empty)
    console = paperdesk("console", "--db", str(empty))
    assert console.returncode == 2
    assert console.stderr.strip() == f"paperdesk: {empty}: no sessions yet (paperdesk run --db {empty} starts one)"


async def test_the_real_console_attached_to_a_headless_session_commands_it_and_detaches_leaving_it_trading(tmp_path):
    config = resting_config(tmp_path)
    db = tmp_path / "desk.sqlite"
    proc = start(config, db, tmp_path / "run.txt")
    try:
        wait_for(lambda: db.exists() and query(db, "SELECT name FROM sqlite_master WHERE name = 'risk_state'")
                 and query(db, "SELECT COUNT(*) FROM positions WHERE qty != 0")[0][0] >= 1, "a position", timeout=120)
        config_seen = stored_config(db, 1)
        assert config_seen is not None and [s.name for s in config_seen.strategies][-1] == "far_btc"
        app = PaperdeskApp(attach(db, poll_seconds=0.2), config_seen)
        async with app.run_test(size=(160, 45)) as pilot:
            await wait_until(pilot, lambda: "ATTACHED" in header(app), timeout=60)
            await pilot.press("h")
            def answered() -> list[str]:
                return [t for t in event_texts(app) if " halt from console " in t and ", attached from " in t]

            await wait_until(pilot, answered, timeout=60)
            assert "ACTIVE -> HALTED" in answered()[0]
            def toasts() -> list[str]:
                return [n.message for n in app._notifications if "halt from console" in n.message]

            await wait_until(pilot, toasts, timeout=20)  # the engine's answer, from the other process, as a toast
            await wait_until(pilot, lambda: "HALTED" in header(app), timeout=60)
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "keeps trading in its own process" in app.screen.question
            await pilot.press("y")
        assert app.return_code == 0
        assert proc.poll() is None and status(db)["running"]  # detached: the session trades on
    finally:
        stop(proc)


TMUX = shutil.which("tmux")


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed: the terminal test needs it")
def test_paperdesk_console_in_a_terminal_attaches_halts_and_detaches_leaving_the_session_trading(tmp_path):
    config = write_config(tmp_path / "c.toml")
    # the operator's own config: its [console] keys apply (a session stores its config without them)
    operator = write_config(tmp_path / "operator.toml", {**BASE_CONFIG, "console": {"keys": {"halt": "H"}}})
    db = tmp_path / "desk.sqlite"
    socket, done = tmp_path / "tmux.sock", tmp_path / "exit.txt"

    def tmux(*args: str) -> str:  # its own server: the user's tmux is never touched
        result = subprocess.run([str(TMUX), "-S", str(socket), *args], capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        return result.stdout

    proc = start(config, db, tmp_path / "run.txt")
    try:
        wait_for(lambda: db.exists() and query(db, "SELECT name FROM sqlite_master WHERE name = 'risk_state'")
                 and query(db, "SELECT COUNT(*) FROM risk_state")[0][0], "the session's risk state", timeout=120)
        tmux("new-session", "-d", "-x", "160", "-y", "45", "-c", str(REPO),
             f"env XDG_CONFIG_HOME={tmp_path / 'home'} {sys.executable} -m console.cli console --db {db} "
             f"--config {operator}; echo $? > {done}")
        wait_for(lambda: "ATTACHED" in tmux("capture-pane", "-p"), "the console on screen", timeout=60)
        tmux("send-keys", "H")
        wait_for(lambda: status(db)["risk"]["state"] == "HALTED", "the other process halted", timeout=60)
        wait_for(lambda: " HALTED " in tmux("capture-pane", "-p").splitlines()[0] + " ",
                 "the header showing what the other process did", timeout=60)
        tmux("send-keys", "q")
        wait_for(lambda: done.exists() or "Quit the console?" in tmux("capture-pane", "-p"), "q answered")
        if not done.exists():  # positions or orders open: it asks first
            assert "keeps trading in its own process" in " ".join(tmux("capture-pane", "-p").split())
            tmux("send-keys", "y")
        wait_for(lambda: done.exists() and done.read_text().strip(), "the console's exit", timeout=60)
        assert done.read_text().strip() == "0"
        assert proc.poll() is None and status(db)["running"]  # detached: the session trades on
    finally:
        subprocess.run([str(TMUX), "-S", str(socket), "kill-server"], capture_output=True, timeout=30)
        stop(proc)


async def test_a_poll_failing_for_an_unforeseen_reason_is_shown_and_the_watch_goes_on(tmp_path):
    from engine.session import PaperSession
    from tests.conftest import make_config

    db = tmp_path / "desk.sqlite"
    await PaperSession(make_config(), db_path=db).run(duration=0.5)
    desk = attach(db, poll_seconds=0.05)
    try:
        real = desk.poll

        def broken() -> None:
            raise TypeError("cannot unpack non-iterable NoneType object")

        desk.poll = broken  # type: ignore[method-assign]
        wait_for(lambda: "TypeError" in (desk.link() or ""), "the failure in the header", timeout=30)
        assert desk._thread is not None and desk._thread.is_alive()
        desk.poll = real  # type: ignore[method-assign]
        wait_for(lambda: "cannot read" not in (desk.link() or ""), "the error cleared by a good poll", timeout=30)
    finally:
        desk.stop("test over")
