"""A small HTTP/1.1 server for the guest's pages, on asyncio streams.

One request per connection, bounded in size, time and number of connections: a guest
needs two requests (the page and a button), so keep-alive buys nothing and costs robustness.
The token is in the path, so the path is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import traceback
from dataclasses import dataclass
from datetime import tzinfo
from http import HTTPStatus
from urllib.parse import parse_qs, quote, urlsplit

from bridge.config import WebPassConfig
from bridge.errors import DeviceTimeoutError, LockbridgeError, LockNotFoundError, LockOfflineError
from bridge.model import Lock
from bridge.webpass import pages
from bridge.webpass.manager import Actuate, NotAllowed, PassRefused, WebPassManager
from bridge.webpass.model import Refusal, WebPass
from bridge.webpass.throttle import Throttle

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
MAX_BODY = 4 * 1024
MAX_CONNECTIONS = 64
WRITE_TIMEOUT = 5.0
PASS_PATH = re.compile(r"^/p/([^/]{1,256})(?:/([^/]{1,256})/([^/]{1,16}))?$")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: str = ""
    location: str | None = None
    retry_after: int | None = None

    def encode(self, *, head_only: bool = False) -> bytes:
        body = self.body.encode("utf-8")
        lines = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            "Content-Type: text/html; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
            "Cache-Control: no-store",
            "Referrer-Policy: no-referrer",
            f"Content-Security-Policy: {pages.CSP}",
            "X-Frame-Options: DENY",
            "X-Content-Type-Options: nosniff",
        ]
        if self.location is not None:
            lines.append(f"Location: {self.location}")
        if self.retry_after is not None:
            lines.append(f"Retry-After: {self.retry_after}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + body


class BadRequest(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def page(status: int, title: str, text: str) -> Response:
    return Response(status, pages.message(title, text))


async def read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "Request headers too large.") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "Malformed request.")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "Malformed header.")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise BadRequest(400, "Chunked requests are not accepted.")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise BadRequest(400, "Malformed Content-Length.")
    if int(length_text) > MAX_BODY:
        raise BadRequest(413, "Request too large.")
    # A form button sends nothing the pass needs; read the body only to keep the stream sane.
    await reader.readexactly(int(length_text))
    return Request(parts[0], parts[1], headers)


# Anything long enough to be a token, wherever a guest or a scanner put it.
_TOKENISH = re.compile(r"[A-Za-z0-9_%-]{16,}")


def printable(text: str, limit: int) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def masked(target: str) -> str:
    """The request target fit for a log line: no token, no control characters."""
    path = target.partition("?")[0]
    match = PASS_PATH.fullmatch(path)
    if match is None:
        return "/p/***" if path.startswith("/p/") else printable(_TOKENISH.sub("***", path), 64)
    rest = f"/{printable(match[2], 64)}/{printable(match[3], 16)}" if match[2] else ""
    return f"/p/***{rest}"


class WebPassServer:
    def __init__(
        self,
        manager: WebPassManager,
        actuate: Actuate,
        zone: tzinfo,
        *,
        throttle: Throttle | None = None,
    ) -> None:
        self._m = manager
        self._actuate = actuate
        self._zone = zone
        self._config: WebPassConfig = manager.config
        self.throttle = throttle if throttle is not None else Throttle(self._config.throttle)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        own = urlsplit(self._config.base_url())
        self._own_origin = f"{own.scheme}://{own.netloc}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self._config.host, self._config.port, limit=MAX_HEAD
        )
        if self._config.public_url is None:
            self._m.base_url = self._own_origin = self._config.base_url(self.port)
        log.info("web passes served on %s:%d", self._config.host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            peer = writer.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            await self._exchange(reader, writer, client)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await writer.wait_closed()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        method, target = "-", "-"
        try:
            async with asyncio.timeout(self._config.request_timeout):
                request = await read_request(reader)
            method, target = request.method, request.target
            response = await self._respond(request, client)
        except BadRequest as err:
            response = page(err.status, "Bad request", err.text)
        except TimeoutError:
            response = page(408, "Too slow", "The request took too long.")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        except Exception as err:
            # Where and what, but not the message: it might quote the request, token and all.
            where = traceback.extract_tb(err.__traceback__)[-1]
            log.error(
                "web pass request failed: %s at %s:%s",
                type(err).__name__,
                where.filename.rsplit("/", 1)[-1],
                where.lineno,
            )
            response = page(500, "Error", "Something went wrong. Please try again.")
        log.info(
            "web %s %s -> %d (%s)", printable(method, 16), masked(target), response.status, client
        )
        with contextlib.suppress(OSError, TimeoutError):
            writer.write(response.encode(head_only=method == "HEAD"))
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()

    async def _respond(self, request: Request, client: str) -> Response:
        path, _, query = request.target.partition("?")
        match = PASS_PATH.fullmatch(path)
        if match is None:
            if path.startswith("/p/"):
                self.throttle.failure(client)
            return page(404, "Not found", "There is nothing here.")
        token, lock_id, action = match[1], match[2], match[3]
        wait = self.throttle.blocked_for(client)
        if wait > 0:
            return Response(
                429,
                pages.message("Too many attempts", "Please wait a few minutes and try again."),
                retry_after=int(wait) + 1,
            )
        web_pass = self._m.find(token)
        if web_pass is None:
            self.throttle.failure(client)
            return page(404, "Link not valid", "This link does not open anything.")
        if lock_id is None:
            if request.method not in ("GET", "HEAD"):
                return page(405, "Not allowed", "Use the buttons on the page.")
            return self._pass_page(web_pass, token, query)
        if request.method != "POST":
            return page(405, "Not allowed", "Use the buttons on the page.")
        if not self._same_origin(request.headers):
            return page(403, "Not allowed", "This request came from another site.")
        return await self._act(web_pass, token, lock_id, action)

    def _same_origin(self, headers: dict[str, str]) -> bool:
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = headers.get("origin")
        # Browsers send "null" under Referrer-Policy: no-referrer; the token guards the rest.
        if origin is None or origin == "null":
            return True
        host = headers.get("host", "")
        return origin in (self._own_origin, f"http://{host}", f"https://{host}")

    def _refused(self, web_pass: WebPass, refusal: Refusal) -> Response:
        if refusal is Refusal.NOT_YET_VALID:
            return page(
                403,
                "Not yet valid",
                f"This pass works from {pages.when(web_pass.starts_at, self._zone)}.",
            )
        text = {
            Refusal.REVOKED: "This pass has been revoked.",
            Refusal.EXPIRED: f"This pass expired on {pages.when(web_pass.ends_at, self._zone)}.",
            Refusal.EXHAUSTED: "This pass has been used up.",
        }[refusal]
        return page(410, "Pass no longer valid", text)

    def _pass_page(self, web_pass: WebPass, token: str, query: str) -> Response:
        refusal = web_pass.refusal(self._m.clock.now())
        if refusal is not None:
            return self._refused(web_pass, refusal)
        locks: list[tuple[str, Lock | None]] = []
        for lock_id in web_pass.lock_ids:
            try:
                locks.append((lock_id, self._m.registry.get(lock_id)))
            except LockNotFoundError:
                locks.append((lock_id, None))
        outcome = None
        try:
            params = parse_qs(query, max_num_fields=4)
        except ValueError:  # more fields than a redirect of ours ever has
            params = {}
        if params.get("r") and params.get("l"):
            outcome = pages.Outcome(params["r"][0], params["l"][0])
        return Response(200, pages.pass_page(web_pass, token, locks, self._zone, outcome))

    async def _act(self, web_pass: WebPass, token: str, lock_id: str, action: str) -> Response:
        if action not in ("lock", "unlock"):
            return page(404, "Not found", "There is nothing here.")
        try:
            result = await self._m.use(
                web_pass, lock_id, "lock" if action == "lock" else "unlock", self._actuate
            )
            outcome = (
                ("locked" if action == "lock" else "unlocked")
                if result["confirmed"]
                else "unconfirmed"
            )
        except PassRefused as err:
            return self._refused(web_pass, err.refusal)
        except NotAllowed:
            return page(403, "Not allowed", "This pass cannot do that.")
        except LockNotFoundError:
            outcome = "failed"
        except LockOfflineError:
            outcome = "offline"
        except DeviceTimeoutError:
            outcome = "timeout"
        except LockbridgeError as err:
            log.warning(
                "web pass %s: %s %s failed: %s", web_pass.web_pass_id, action, lock_id, err.code
            )
            outcome = "failed"
        location = f"/p/{quote(token, safe='')}?r={outcome}&l={quote(lock_id, safe='')}"
        return Response(303, pages.message("Done", "Back to the pass."), location=location)
