"""Getting media bytes from `data:` and http(s) URLs, refusing private networks unless allowed."""

from __future__ import annotations

import asyncio
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
from . import ByteBudget, MediaError

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.IGNORECASE)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: NAT64 (well-known and local-use prefixes), 6to4 and Teredo: the connection leaves this host for a
#: translator or relay, towards an IPv4 address carried inside that no check here can vouch for.
_TRANSLATED = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_PRIVATE = "a private, loopback, link-local or reserved address"
_NEVER = "a multicast or broadcast address"


def reached_address(ip: IPAddress) -> IPAddress:
    """The address a connection to `ip` reaches: an IPv4-mapped address (`::ffff:a.b.c.d`) its IPv4
    address, which this host connects to itself; others themselves."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(ip: IPAddress) -> bool:
    """A global unicast address: not private, loopback, link-local, shared, reserved, documentation,
    site-local or IPv4-compatible."""
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return False
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)


def never_allowed(ip: IPAddress) -> bool:
    """Addresses no setting allows: multicast and broadcast."""
    return ip.is_multicast or ip == _BROADCAST


def unspecified(ip: IPAddress) -> bool:
    """`0.0.0.0/8` and `::`, which reach this machine on Linux: allowed only when listed by address."""
    return ip.is_unspecified or ip in _THIS_NETWORK


def translated(ip: IPAddress) -> bool:
    """NAT64, 6to4 and Teredo addresses: allowed only when listed as IPv6, never judged by the IPv4 inside."""
    return any(ip in network for network in _TRANSLATED)


class RefusedAddress(OSError):
    """The host is, or resolves to, an address media may not come from."""

    def __init__(self, host: str, address: str, never: bool) -> None:
        kind = _NEVER if never else _PRIVATE
        where = f"{address} is {kind}" if host.strip("[]") == address else f"'{host}' resolves to {address}, {kind}"
        super().__init__(where)
        self.never = never


class HostPolicy:
    """Which hosts and addresses media may come from.

    Public addresses always; private, loopback, link-local and reserved ones only when
    `allow_private` is set or `allowed_hosts` lists the host name, the address or a network
    holding it; unspecified (`0.0.0.0`, `::`) and IPv6 translation (NAT64, 6to4, Teredo) addresses
    only when listed by address or network, never by a name that resolves to them; multicast and
    broadcast never.
    """

    def __init__(self, allowed_hosts: list[str], allow_private: bool = False) -> None:
        self._allow_private = allow_private
        self._names: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowed_hosts:
            text = entry.strip().lower().replace("[", "").replace("]", "")
            try:
                self._networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self._names.add(text.rstrip("."))

    def host_allowed(self, host: str) -> bool:
        """Whether `allowed_hosts` names `host` itself."""
        return host.lower().strip("[]").rstrip(".") in self._names

    def address_allowed(self, address: str, host: str | None = None) -> bool:
        """Whether media may come from `address`, which `host` (if given) resolves to."""
        try:
            self.check(address, host or address)
        except RefusedAddress:
            return False
        return True

    def check(self, address: str, host: str) -> None:
        """Raise `RefusedAddress` unless media may come from `address`, which `host` is or resolves to."""
        given = ipaddress.ip_address(address.split("%")[0])
        ip = reached_address(given)
        if never_allowed(ip):
            raise RefusedAddress(host, address, never=True)
        listed = any(a in network for network in self._networks for a in (ip, given))
        if unspecified(ip) or translated(ip):  # this machine, or a relay: only an entry for the address opens it
            if listed:
                return
            raise RefusedAddress(host, address, never=False)
        if listed or is_public(ip) or self._allow_private or self.host_allowed(host):
            return
        raise RefusedAddress(host, address, never=False)


class GuardedResolver(AbstractResolver):
    """Resolves names, then refuses the lot if any address is not allowed; connections use what was checked."""

    def __init__(self, policy: HostPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            results = await self._resolver.resolve(host, port, family)
        except (UnicodeError, ValueError) as exc:  # names getaddrinfo cannot even encode: not found, not a crash
            raise OSError(f"cannot resolve '{host[:80]}': {exc}") from None
        for result in results:
            self._policy.check(result["host"], host)
        return results

    async def close(self) -> None:
        await self._resolver.close()


def decode_data_url(url: str, max_bytes: int, media_prefix: str) -> bytes:
    """The bytes of a base64 `data:` URL whose media type starts with `media_prefix`.

    The size is checked on the encoded length, before anything is decoded.
    """
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
    """Gets media bytes by http(s) URL under the configured limits; one HTTP session per server.

    `media.fetch_timeout_s` bounds connecting, each read, and the whole fetch with its redirects.
    Bodies are taken as sent (no decompression), so a compressed body cannot expand past the cap.
    """

    def __init__(self, config: MediaConfig) -> None:
        self._config = config
        self._policy = HostPolicy(config.allowed_hosts, config.allow_private_networks)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        limit = self._config.fetch_timeout_s
        timeout = aiohttp.ClientTimeout(total=limit, connect=limit, sock_read=limit)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._policy), limit=32)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def download(self, url: str, max_bytes: int, budget: ByteBudget | None = None) -> bytes:
        """The body at an http(s) `url`, at most `max_bytes`, following checked redirects.

        Each chunk read counts towards `budget`, the request's bytes for all its media.
        """
        try:
            target = URL(url)
        except ValueError:
            raise MediaError("not a valid URL") from None
        try:
            async with asyncio.timeout(self._config.fetch_timeout_s):
                return await self._follow(target, max_bytes, budget)
        except TimeoutError:
            raise MediaError(f"fetching media took over {self._config.fetch_timeout_s:g} s", code="media_unreachable") from None

    async def _follow(self, target: URL, max_bytes: int, budget: ByteBudget | None) -> bytes:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                self._check_url(target, redirected=hop > 0)
                async with self._get(target) as response:
                    location = response.headers.get("Location") if response.status in _REDIRECTS else None
                    if location is None:
                        if response.status != 200:
                            raise MediaError(f"fetching {target.host} failed with HTTP {response.status}")
                        return await _read_capped(response, max_bytes, budget)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, RefusedAddress):
                    raise _refused(exc.os_error, hop > 0) from None
                raise MediaError(f"cannot reach {target.host}: {exc.os_error.strerror or exc.os_error}", code="media_unreachable") from None
            except RefusedAddress as exc:
                raise _refused(exc, hop > 0) from None
            except aiohttp.ClientError as exc:
                raise MediaError(f"fetching media from {target.host} failed: {type(exc).__name__} {exc}", code="media_unreachable") from None
            try:
                target = target.join(URL(location))
            except ValueError:
                raise MediaError(f"{target.host} redirected to an invalid URL") from None
        raise MediaError(f"more than {MAX_REDIRECTS} redirects fetching media")

    def _get(self, target: URL) -> Any:
        assert self._session is not None, "MediaFetcher.start() was not awaited"
        return self._session.get(target, allow_redirects=False, headers={"Accept-Encoding": "identity"})

    def _check_url(self, target: URL, redirected: bool) -> None:
        """The scheme, and an IP-literal host's address; the resolver checks what names resolve to."""
        if target.scheme not in ("http", "https"):
            allowed = "a redirect must lead to http or https" if redirected else "media URLs must be http, https, data: or a file in media.local_dir"
            raise MediaError(f"{allowed}, not '{target.scheme or 'none'}'", code="media_url_refused")
        raw = target.raw_host or ""
        if not raw:
            raise MediaError("media URL has no host")
        try:
            host = target.host or ""  # decodes IDNA: malformed punycode fails here
            raw.encode("idna")  # as the resolver will: empty or over-long labels fail here
        except UnicodeError:
            raise MediaError(f"'{raw[:80]}' is not a valid host name") from None
        if len(raw) > 253:
            raise MediaError(f"'{raw[:80]}...' is not a valid host name: over 253 characters")
        try:
            ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            if _numeric_ipv4(host):
                raise MediaError(f"'{host}' is not a canonical IPv4 address", code="media_url_refused") from None
            return
        self._policy.check(host, host)


def _numeric_ipv4(host: str) -> bool:
    """Whether `host` is an IPv4 address in a legacy form (`127.1`, `0x7f.0.0.1`, `2130706433`)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _refused(exc: RefusedAddress, redirected: bool) -> MediaError:
    hint = "no setting allows it" if exc.never else "list it in media.allowed_hosts or set media.allow_private_networks to allow it"
    where = " after a redirect" if redirected else ""
    return MediaError(f"refused to fetch media{where}: {exc}; {hint}", code="media_url_refused")


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int, budget: ByteBudget | None) -> bytes:
    """The body, refusing as soon as it passes `max_bytes` or the request's `budget`."""
    too_large = MediaError(f"media is over the {max_bytes}-byte limit", status=413, code="media_too_large")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
        if budget is not None:
            budget.take(len(chunk))
    return bytes(body)
