"""Getting media bytes from `data:` and http(s) URLs, refusing private networks unless allowed."""

from __future__ import annotations

import binascii
import ipaddress
import re
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from ..config import MediaConfig
from . import MediaError

MAX_REDIRECTS = 5
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostPolicy:
    """Which hosts and addresses media may come from: public addresses, plus `allowed_hosts`."""

    def __init__(self, allowed_hosts: list[str]) -> None:
        self._names = {h.lower().strip("[]") for h in allowed_hosts}
        self._networks = []
        for entry in self._names:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue

    def host_allowed(self, host: str) -> bool:
        return host.lower().strip("[]") in self._names

    def address_allowed(self, address: str) -> bool:
        ip: IPAddress = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self._networks):
            return True
        return ip.is_global and not ip.is_multicast


class RefusedAddress(OSError):
    """The name resolved to an address media may not come from."""


class GuardedResolver(AbstractResolver):
    """Resolves names, then refuses the lot if any address is not allowed; connections use what was checked."""

    def __init__(self, policy: HostPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if not self._policy.host_allowed(host):
            refused = [r["host"] for r in results if not self._policy.address_allowed(r["host"])]
            if refused:
                raise RefusedAddress(f"'{host}' resolves to {refused[0]}, a private or reserved address")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def decode_data_url(url: str, max_bytes: int, media_prefix: str) -> bytes:
    """The bytes of a base64 `data:` URL whose media type starts with `media_prefix`."""
    match = _DATA_URL.match(url)
    if match is None or not match["b64"]:
        raise MediaError("a data URL must look like data:<type>;base64,<data>")
    media_type = (match["type"] or "").lower()
    if not media_type.startswith(media_prefix):
        raise MediaError(f"data URL media type '{media_type or 'none'}' is not {media_prefix}*")
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > max_bytes:
        raise MediaError(f"inline media is over the {max_bytes}-byte limit", status=413, code="media_too_large")
    try:
        return binascii.a2b_base64(payload.strip(), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"data URL is not valid base64: {exc}") from None


class MediaFetcher:
    """Gets media bytes by URL under the configured limits; one HTTP session per server."""

    def __init__(self, config: MediaConfig) -> None:
        self._config = config
        self._policy = HostPolicy(config.allowed_hosts)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.fetch_timeout_s)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._policy), limit=32)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def download(self, url: str, max_bytes: int) -> bytes:
        """The body at an http(s) `url`, at most `max_bytes`, following checked redirects."""
        try:
            target = URL(url)
        except ValueError:
            raise MediaError("not a valid URL") from None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                self._check_url(target)
                async with self._get(target) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        target = target.join(URL(response.headers["Location"]))
                        continue
                    if response.status != 200:
                        raise MediaError(f"fetching {target.host} failed with HTTP {response.status}")
                    return await _read_capped(response, max_bytes)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, RefusedAddress):
                    raise _refused(exc.os_error) from None
                raise MediaError(f"cannot reach {target.host}: {exc.os_error.strerror or exc.os_error}", code="media_unreachable") from None
            except RefusedAddress as exc:
                raise _refused(exc) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise MediaError(f"fetching media from {target.host} failed: {type(exc).__name__} {exc}", code="media_unreachable") from None
        raise MediaError(f"more than {MAX_REDIRECTS} redirects fetching media")

    def _get(self, target: URL) -> Any:
        assert self._session is not None, "MediaFetcher.start() was not awaited"
        return self._session.get(target, allow_redirects=False)

    def _check_url(self, target: URL) -> None:
        if target.scheme not in ("http", "https"):
            raise MediaError(f"media URLs must be http, https or data, not '{target.scheme or 'none'}'", code="media_url_refused")
        host = target.host or ""
        if not host:
            raise MediaError("media URL has no host")
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not (self._policy.host_allowed(host) or self._policy.address_allowed(host.strip("[]"))):
            raise RefusedAddress(f"'{host}' is a private or reserved address")


def _refused(exc: RefusedAddress) -> MediaError:
    return MediaError(f"refused to fetch media: {exc}; list the host in media.allowed_hosts to allow it", code="media_url_refused")


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, refusing as soon as it passes `max_bytes`."""
    too_large = MediaError(f"media is over the {max_bytes}-byte limit", status=413, code="media_too_large")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)
