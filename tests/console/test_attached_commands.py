"""Commands to a desk in another process go out off the event loop, one at a time, in the order the keys gave them."""

import threading
import time

from console.app import PaperdeskApp
from console.desk import LocalDesk
from engine.session import PaperSession
from tests.console.test_console_keys import calm_config


class SlowRemoteDesk(LocalDesk):
    """Stands in for an attached desk: each command is a slow write (a halt the slowest), recorded as it lands."""

    attached = True

    def __init__(self, session: PaperSession) -> None:
        super().__init__(session)
        self.landed: list[str] = []
        self.threads: set[str] = set()

    def command(self, command, args, reason, source):
        self.threads.add(threading.current_thread().name)
        time.sleep(0.6 if command == "halt" else 0.05)
        self.landed.append(command)
        return True, f"queued {command}"


async def test_an_attached_desks_commands_land_in_the_order_given_and_never_on_the_event_loop():
    config = calm_config()
    session = PaperSession(config)
    await session.open()
    desk = SlowRemoteDesk(session)
    app = PaperdeskApp(desk, config)
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("h")
            await pilot.press("p")
            deadline = time.monotonic() + 30
            while len(desk.landed) < 2:
                assert time.monotonic() < deadline, "the commands never landed"
                await pilot.pause(0.1)
            assert desk.landed == ["halt", "pause"]
            assert threading.main_thread().name not in desk.threads
    finally:
        await session.close()
