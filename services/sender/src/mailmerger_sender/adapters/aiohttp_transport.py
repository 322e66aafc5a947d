"""httpx requests carried over the wire by aiohttp.

Why: on this machine httpcore's pool costs 1.4-2.9 ms of CPU per request at the sender's
concurrency (it re-checks every pooled connection for every request), aiohttp about 0.2 ms. The
adapter keeps httpx's API (and tests keep ``httpx.MockTransport``); only the engine differs.

Failures are mapped to httpx's exceptions by *when* they happened, which decides whether a send
may be repeated: ``ConnectError``/``ConnectTimeout`` only when no connection carried the request;
anything once it was being written (a dropped connection, a read timeout, a truncated answer)
becomes ``ReadError``/``ReadTimeout``/``RemoteProtocolError``.
"""

from __future__ import annotations

import io

import aiohttp
import httpx

# aiohttp writes a bytes body in one go and warns above 1 MiB (a resume attachment is often
# more); a file-like body is written in chunks instead.
_ONE_WRITE_BYTES = 1024 * 1024


def _body(content: bytes) -> bytes | io.BytesIO | None:
    if not content:
        return None
    return content if len(content) <= _ONE_WRITE_BYTES else io.BytesIO(content)


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, keepalive_expiry: float) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_expiry
            )
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            async with self._client().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=_body(request.content),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            ) as response:
                content = await response.read()
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "no answer in time", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
        # The body stays as sent (auto_decompress off): httpx decodes it by Content-Encoding.
        return httpx.Response(response.status, headers=response.raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
