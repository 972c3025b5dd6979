"""A paper session trading on an event loop of its own, in a thread of its own.

A console painting a frame holds its loop for tens of milliseconds; on the trading loop that is a market event,
a fill or an operator's halt waiting behind it. Here the session's loop only trades (and saves); whoever watches
it reads the snapshot this thread publishes, and sends commands that run on the session's loop between two market
events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from engine.session import PaperSession
from engine.snapshot import EngineSnapshot

T = TypeVar("T")

PUBLISH_SECONDS = 0.1  # how often a running session publishes its snapshot: the console's 10 Hz
ANSWER_SECONDS = 5.0   # how long a command waits for the session's loop before the caller is told it did not answer
# how long the session's thread waits for the interpreter while the console's holds it (Python's default is 5 ms);
# bench/console_load.py: the session's loop lag p99 went from 13.6 ms to 8 ms at 1 ms, to 4.3-4.5 ms at 0.2 ms with
# LET_IN_EVERY_S at 0.5 ms (engine/clock.py); order throughput and the console's refresh unchanged
SWITCH_SECONDS = 0.0002


class SessionNotAnswering(RuntimeError):
    """The session's loop did not run a call within ANSWER_SECONDS (it may still run it)."""


class SessionThread:
    """Runs session in a daemon thread on its own loop: open(), then run(); snapshot() is safe from any thread."""

    def __init__(self, session: PaperSession, publish_seconds: float = PUBLISH_SECONDS) -> None:
        self.session = session
        self.publish_seconds = publish_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._finish: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="paperdesk-session", daemon=True)
        self._latest: EngineSnapshot | None = None
        self._unpublished: Exception | None = None  # why the session's picture stopped coming
        self._switch: float | None = None  # the interpreter's switch interval before this thread started

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the session's thread has not started: call open() first")
        return self._loop

    async def open(self) -> None:
        """Start the thread and open the session on its loop; raises what PaperSession.open raises (and then the
        thread has ended)."""
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, SWITCH_SECONDS))
        self._thread.start()
        await asyncio.to_thread(self._ready.wait)
        try:
            await self.submit(self.session.open())
        except BaseException:
            await self.join()
            raise
        self._latest = await self.submit(self._snapshot())

    async def run(self, duration: float | None = None) -> EngineSnapshot:
        """Trade until stop() or duration wall seconds; publishes a snapshot every publish_seconds meanwhile. The
        thread ends with it, whatever run() raises."""
        try:
            return await self.submit(self._run(duration))
        finally:
            await self.join()

    async def close(self) -> None:
        """Close the session if run() never did, and end the thread (after a failed start of whoever watches)."""
        try:
            await self.submit(self.session.close())
        finally:
            await self.join()

    def stop(self, reason: str) -> None:
        """Ask the session to end (safe from any thread, signal handlers included)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.session.stop(reason)  # nothing runs it: the flag is all there is to set
            return
        try:
            loop.call_soon_threadsafe(self.session.stop, reason)
        except RuntimeError:  # its loop closed in between: the session has ended
            pass

    def snapshot(self) -> EngineSnapshot:
        """The latest picture the session's loop published (at most publish_seconds old, or fresher after call())."""
        if self._unpublished is not None:  # a console showing a picture that no longer moves would hide it
            raise RuntimeError(f"the session's snapshot failed: {self._unpublished!r}") from self._unpublished
        if self._latest is None:
            raise RuntimeError("the session has not opened: await open() first")
        return self._latest

    def call(self, fn: Callable[[], T], timeout: float = ANSWER_SECONDS) -> T:
        """Run fn on the session's loop, between two market events, and return what it returns; publishes a fresh
        snapshot with it, so the caller sees the effect at once. Blocks the calling thread (never the session's).

        Raises SessionNotAnswering if the loop did not get to it within timeout, or has ended."""
        loop = self.loop
        if loop.is_closed():  # a key pressed as the session ended
            raise SessionNotAnswering("the session has ended; nothing was applied")

        async def both() -> tuple[T, EngineSnapshot]:
            return fn(), self.session.snapshot()

        future = asyncio.run_coroutine_threadsafe(both(), loop)
        try:
            result, self._latest = future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise SessionNotAnswering(f"the session did not answer within {timeout:g} s; it may still apply it, "
                                      "see the event log") from None
        return result

    def submit(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """coro run on the session's loop, as a future of the calling loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def join(self) -> None:
        """End the thread: its loop cancels what is left on it (as asyncio.run does) and closes."""
        loop = self._loop
        if loop is not None and self._finish is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._finish.set)
            except RuntimeError:
                pass
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
            self._switch = None

    def _serve(self) -> None:
        asyncio.run(self._until_finished())

    async def _until_finished(self) -> None:
        self._finish = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._finish.wait()

    async def _snapshot(self) -> EngineSnapshot:
        return self.session.snapshot()

    async def _run(self, duration: float | None) -> EngineSnapshot:
        publisher = asyncio.create_task(self._publish(), name="paperdesk-publish")
        try:
            final = await self.session.run(duration)
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
        self._latest = final
        return final

    async def _publish(self) -> None:
        while True:
            await asyncio.sleep(self.publish_seconds)
            try:
                self._latest = self.session.snapshot()
            except Exception as failed:
                self._unpublished = failed
                return
