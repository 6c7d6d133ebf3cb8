"""Shared MQTT plumbing for the agent: a reconnecting session and payload parsing.

:class:`MqttSession` owns one :class:`aiomqtt.Client`. It connects with retry (exponential
backoff), re-subscribes every registered topic filter and runs an ``on_connect`` hook after each
(re)connection, and dispatches each message to the handlers whose filter matches. A handler or
an ``on_connect`` hook that raises is logged and does not stop the session. Publishing while
disconnected raises :class:`MqttUnavailableError` at once instead of queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

__all__ = [
    "MessageHandler",
    "MqttSession",
    "MqttUnavailableError",
    "json_object",
    "parse_reading",
]

_log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
"""Called with the topic and the raw payload of each matching message."""


class MqttUnavailableError(ConnectionError):
    """The broker cannot be reached now; the message names the broker."""


def _payload_bytes(payload: object) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


def json_object(payload: bytes) -> dict[str, Any]:
    """Decode a JSON object payload; raise :class:`ValueError` saying why when it is not one."""
    try:
        value = json.loads(payload.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {payload[:80]!r}")
    return value


def parse_reading(payload: bytes, key: str | None = None) -> float:
    """Read one finite number from a payload: a plain number, or a field of a JSON object.

    Parameters
    ----------
    payload : bytes
        ``b"21.5"``, or JSON such as ``b'{"temperature": 21.5}'``.
    key : str, optional
        Field of the JSON object holding the number; dots descend into nested objects
        (``"ENERGY.Power"``). Without it the payload must be a plain number.

    Returns
    -------
    float
        The number.

    Raises
    ------
    ValueError
        If the payload holds no finite number where expected (the message says why).
    """
    text = payload.decode(errors="replace").strip()
    if key is None:
        with contextlib.suppress(ValueError):
            return _finite(float(text))
        raise ValueError(f"not a number: {text[:80]!r}")
    value: object = json_object(payload)
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"no field {key!r} in {text[:80]!r}")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"field {key!r} is not a number: {value!r}")
    try:
        return _finite(float(value))
    except ValueError:
        raise ValueError(f"field {key!r} is not a finite number: {value!r}") from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return value


class MqttSession:
    """One reconnecting MQTT connection with topic handlers.

    Parameters
    ----------
    host : str
        Broker address.
    port : int
        Broker TCP port.
    identifier : str, optional
        MQTT client id; random when omitted.
    will : aiomqtt.Will, optional
        Last will the broker publishes when the connection is lost.
    on_connect : callable, optional
        Coroutine function run after each (re)connection and re-subscription, e.g. to publish
        availability and retained configuration.
    retry_s : float
        First delay between connection attempts [s]; doubles up to ``max_retry_s``.
    max_retry_s : float
        Longest delay between connection attempts [s].
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        identifier: str | None = None,
        will: aiomqtt.Will | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        retry_s: float = 0.5,
        max_retry_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self._identifier = identifier
        self._will = will
        self._on_connect = on_connect
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._handlers: list[tuple[str, MessageHandler]] = []
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the broker."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        return self._connected.is_set()

    async def start(self, *, timeout_s: float = 10.0) -> None:
        """Start connecting; wait up to ``timeout_s`` [s] for the first connection.

        Raises
        ------
        MqttUnavailableError
            If the broker could not be reached in time (the session keeps retrying).
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt {self.address}")
        await self.wait_connected(timeout_s)

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` [s] until connected; raise :class:`MqttUnavailableError`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            raise MqttUnavailableError(
                f"MQTT broker {self.address} not reachable within {timeout_s:g} s"
            ) from None

    async def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call ``handler`` for every message on ``topic_filter`` (also after reconnecting)."""
        self._handlers.append((topic_filter, handler))
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.subscribe(topic_filter, qos=1)

    async def publish(
        self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        """Publish now; raise :class:`MqttUnavailableError` while disconnected."""
        client = self._client
        if client is None or not self.connected:
            raise MqttUnavailableError(f"not connected to MQTT broker {self.address}")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as error:
            raise MqttUnavailableError(
                f"publishing to {topic!r} on {self.address} failed: {error}"
            ) from None

    async def aclose(self) -> None:
        """Disconnect and stop retrying."""
        task, self._task = self._task, None
        while task is not None and not task.done():
            # Cancel until it ends: on Python 3.11, asyncio.wait_for inside aiomqtt may
            # swallow one cancellation, and a single cancel() then awaits forever.
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            task.result()  # an error that ended it surfaces here
        self._connected.clear()
        self._client = None

    async def _run(self) -> None:
        delay_s = self._retry_s
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self._identifier, will=self._will
                ) as client:
                    self._client = client
                    for topic_filter, _ in list(self._handlers):
                        await client.subscribe(topic_filter, qos=1)
                    self._connected.set()
                    if self._on_connect is not None:
                        await self._on_connect()
                    delay_s = self._retry_s
                    async for message in client.messages:
                        self._dispatch(message.topic.value, message)
            except (aiomqtt.MqttError, MqttUnavailableError) as error:
                _log.warning("MQTT broker %s: %s; retrying in %g s", self.address, error, delay_s)
            except Exception:  # a failing on_connect hook must not end the session
                _log.exception("MQTT session %s failed; retrying in %g s", self.address, delay_s)
            finally:
                self._connected.clear()
                self._client = None
            await asyncio.sleep(delay_s)
            delay_s = min(2.0 * delay_s, self._max_retry_s)

    def _dispatch(self, topic: str, message: aiomqtt.Message) -> None:
        payload = _payload_bytes(message.payload)
        for topic_filter, handler in list(self._handlers):
            if message.topic.matches(topic_filter):
                try:
                    handler(topic, payload)
                except Exception:
                    _log.exception("MQTT handler for %r failed on %r", topic_filter, payload[:80])
