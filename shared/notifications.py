"""Postgres LISTEN/NOTIFY for process-local caches: what another process changed, pushed.

Postgres is the only coordinator between replicas, so a replica that caches a fact (an API key's
owner) learns that another replica changed it from a notification sent by a trigger in the same
transaction as the change (delivered once it commits). A notification sent while this process
was not listening is lost for it, so the rule for every cache built on this is:

- serve from the cache only while `PostgresListener.connected` is true;
- forget everything (`on_reset`) whenever listening stops or starts again, since notifications
  may have been missed in between.

A dead connection is noticed by asyncpg when the server closes it (a restart, a terminated
backend) and, for a silent network failure, by a ping every `ping_seconds`; caches also bound
the age of any entry on their own (see shared.auth.ApiKeyCache), so no failure can keep a stale
entry forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str], None]
ResetHandler = Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Subscription:
    channel: str
    on_message: MessageHandler
    on_reset: ResetHandler


class PostgresListener:
    """One connection, LISTENing on every subscribed channel, reconnecting when it is lost.

    Subscribe before `start()`. Handlers run on the event loop and must not block or await:
    they drop cache entries.
    """

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str,
        ping_seconds: float = 5.0,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._ping_seconds = ping_seconds
        self._max_backoff = max_backoff_seconds
        self._subscriptions: list[_Subscription] = []
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self.backend_pid: int | None = None
        """The listening backend's pid, while connected (tests terminate it)."""

    @property
    def connected(self) -> bool:
        return self._connected

    def subscribe(
        self, channel: str, *, on_message: MessageHandler, on_reset: ResetHandler
    ) -> None:
        if self._task is not None:
            raise RuntimeError("subscribe before start()")
        self._subscriptions.append(_Subscription(channel, on_message, on_reset))

    async def start(self) -> None:
        """Listen in the background: the service starts even while Postgres is unreachable
        (caches stay off until the first LISTEN succeeds)."""
        self._task = asyncio.create_task(self._run(), name=f"listen:{self._application_name}")

    async def wait_listening(self) -> None:
        """Until LISTEN is in place (callers bound the wait with asyncio.timeout)."""
        await self._listening.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._lost()

    async def _run(self) -> None:
        backoff = 0.1
        warned = False
        while True:
            try:
                await self._listen_until_lost()
                backoff = 0.1
                warned = False
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not warned:  # once per outage, not once per retry
                    logger.warning("listen_connection_lost", extra={"error": type(exc).__name__})
                    warned = True
            finally:
                self._lost()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _listen_until_lost(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": self._application_name}
        )
        self._conn = conn
        closed = asyncio.Event()
        # Runs as soon as asyncpg sees the connection close: caches stop serving at that moment,
        # not at the next ping.
        conn.add_termination_listener(lambda _conn: (self._lost(), closed.set()))
        for channel in {s.channel for s in self._subscriptions}:
            await conn.add_listener(channel, self._dispatch)
        # Anything cached so far was cached while not listening (or before a gap).
        self._reset_all()
        self.backend_pid = conn.get_server_pid()
        self._connected = True
        self._listening.set()
        while not closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), self._ping_seconds)
                break
            await conn.fetchval("SELECT 1", timeout=self._ping_seconds)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for subscription in self._subscriptions:
            if subscription.channel == channel:
                subscription.on_message(payload)

    def _lost(self) -> None:
        was_connected = self._connected
        self._connected = False
        self.backend_pid = None
        self._listening.clear()
        if was_connected:
            self._reset_all()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _reset_all(self) -> None:
        for subscription in self._subscriptions:
            subscription.on_reset()
