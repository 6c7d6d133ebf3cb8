"""Inputs a job reads by URL, fetched by the heater outside the sandbox before the task runs.

A job's ``input_urls`` name each input's URL; a heater fetches ``http://`` and ``https://``
URLs that carry the content's SHA-256 in their fragment (``https://host/data.csv#sha256=HEX``,
pip's convention): the fragment is never sent, the bytes are streamed to a file, refused past
a size limit, and kept only when their SHA-256 is the one named. Kept files are named by that
hash, so a second task of the job (or another job with the same data) fetches nothing.

The sandbox has no network; these fetches happen on the heater's own connection, so a URL may
not reach the heater's home network: every host (redirects included, followed by hand up to
:data:`MAX_REDIRECTS`) must resolve to public addresses only, unless ``allow_private`` is set
(a test, or a fleet whose data lives on a private network). The connection goes to the
address that was checked (TLS still verifies the host's name), so a host that resolves
elsewhere a second time cannot slip past the check. Every failure is an
:class:`InputFetchError` whose message names the input and what went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx

from heatgrid.core.errors import InputError
from heatgrid.protocol.jobs import split_input_url

__all__ = ["MAX_REDIRECTS", "InputFetchError", "fetch_inputs", "parse_input_url"]

MAX_REDIRECTS: Final = 5
"""Redirects followed for one input."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class InputFetchError(InputError):
    """An input could not be fetched or is not the one named; the message says which and why."""


def parse_input_url(name: str, url: str) -> tuple[str, str]:
    """Return (the URL to fetch, without its fragment; the SHA-256 it names).

    The rule is :func:`heatgrid.protocol.jobs.split_input_url`, the one the coordinator
    checks at submission.

    Raises
    ------
    InputFetchError
        The URL is not ``http(s)://`` or does not end in ``#sha256=`` and 64 hex digits.
    """
    try:
        return split_input_url(url)
    except ValueError as error:
        raise InputFetchError(f"input {name!r}: {error}") from None


async def _checked_addresses(name: str, url: str, allow_private: bool) -> list[str]:
    """Return the addresses of the URL's host; refuse one that resolves to a non-public one."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as error:
        raise InputFetchError(f"input {name!r}: cannot resolve {host}: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not address.is_global and not allow_private:
            raise InputFetchError(
                f"input {name!r}: {host} resolves to {address}, which is not a public address; "
                "heaters fetch inputs only from the internet, never from their home network"
            )
    if not addresses:
        raise InputFetchError(f"input {name!r}: {host} resolves to no address")
    return list(dict.fromkeys(str(address) for address in addresses))


def _pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Return the URL aimed at ``address``, its Host header and the TLS name to verify."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    port = f":{parts.port}" if parts.port else ""
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return (
        parts._replace(netloc=f"{literal}{port}").geturl(),
        {"Host": host_header},
        {"sni_hostname": host},
    )


async def _connect(http: httpx.AsyncClient, url: str, addresses: list[str]) -> httpx.Response:
    """Send GET ``url`` to the first of ``addresses`` that answers; return the response."""
    for index, address in enumerate(addresses):
        aimed, headers, extensions = _pinned(url, address)
        request = http.build_request("GET", aimed, headers=headers, extensions=extensions)
        try:
            return await http.send(request, stream=True)
        except httpx.ConnectError:
            if index == len(addresses) - 1:
                raise
    raise AssertionError("unreachable: addresses is never empty")


async def _stream(
    http: httpx.AsyncClient,
    name: str,
    url: str,
    partial: Path,
    *,
    max_bytes: int,
    allow_private: bool,
) -> tuple[str, str | None]:
    """GET ``url`` into ``partial``; return (SHA-256, None) or ("", the redirect's target)."""
    digest = hashlib.sha256()
    size_bytes = 0
    response = await _connect(http, url, await _checked_addresses(name, url, allow_private))
    async with contextlib.aclosing(response):
        if response.status_code in _REDIRECTS and "location" in response.headers:
            return "", urljoin(url, response.headers["location"])
        if response.status_code != httpx.codes.OK:
            raise InputFetchError(
                f"input {name!r}: GET {url} answered {response.status_code} "
                f"{response.reason_phrase}"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise InputFetchError(
                f"input {name!r}: {url} is {int(declared)} bytes, over the limit of {max_bytes}"
            )
        with partial.open("wb") as blob:
            async for chunk in response.aiter_bytes():
                size_bytes += len(chunk)
                if size_bytes > max_bytes:
                    raise InputFetchError(
                        f"input {name!r}: {url} sent more than the limit of {max_bytes} bytes"
                    )
                digest.update(chunk)
                await asyncio.to_thread(blob.write, chunk)
    return digest.hexdigest(), None


async def _fetch_one(
    http: httpx.AsyncClient,
    name: str,
    url: str,
    cache_dir: Path,
    *,
    max_bytes: int,
    allow_private: bool,
) -> Path:
    target, sha256 = parse_input_url(name, url)
    kept = cache_dir / sha256
    if kept.is_file():
        return kept
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"{sha256}.{os.getpid()}.partial"
    try:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                received, redirect = await _stream(
                    http, name, target, partial, max_bytes=max_bytes, allow_private=allow_private
                )
            except httpx.HTTPError as error:
                raise InputFetchError(
                    f"input {name!r}: GET {target} failed: {type(error).__name__}: {error}"
                ) from None
            if redirect is None:
                break
            parse_input_url(name, redirect + f"#sha256={sha256}")  # http(s) only
            target = redirect
        else:
            raise InputFetchError(
                f"input {name!r}: {url} redirects more than {MAX_REDIRECTS} times"
            )
        if received != sha256:
            raise InputFetchError(
                f"input {name!r}: the bytes of {target} have SHA-256 {received}, not {sha256} "
                "as the URL names; the file changed or was tampered with, nothing was kept"
            )
        partial.replace(kept)
    finally:
        partial.unlink(missing_ok=True)
    return kept


async def fetch_inputs(
    input_urls: Mapping[str, str],
    cache_dir: Path,
    *,
    max_bytes: int,
    allow_private: bool = False,
    timeout_s: float = 60.0,
) -> dict[str, Path]:
    """Fetch and check every input; return each input's local file by name.

    Parameters
    ----------
    input_urls : mapping of str to str
        Input name to URL (``https://host/file#sha256=HEX``).
    cache_dir : Path
        Where checked inputs are kept, named by their SHA-256.
    max_bytes : int
        Most bytes of all the inputs together [bytes].
    allow_private : bool
        Allow hosts on private, loopback or link-local addresses.
    timeout_s : float
        Timeout of each network operation [s].

    Raises
    ------
    InputFetchError
        An input could not be fetched, is too large, or is not the file its hash names.
    """
    fetched: dict[str, Path] = {}
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as http:
        for name, url in sorted(input_urls.items()):
            left = max_bytes - sum(path.stat().st_size for path in fetched.values())
            fetched[name] = await _fetch_one(
                http, name, url, cache_dir, max_bytes=left, allow_private=allow_private
            )
    return fetched
