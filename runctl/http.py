"""The one HTTP layer every REST provider uses.

:class:`HttpApi` wraps one ``httpx.AsyncClient`` per provider object and owns,
for all of them:

- **timeouts** (connect 10 s, read 30 s by default);
- **one retry policy**: exponential backoff with full jitter on 429, 502, 503,
  504 and connection failures (and 500 for reads: GET, HEAD, OPTIONS), honouring
  ``Retry-After``; a request that is not
  idempotent (POST, PATCH) is re-sent only when it certainly did not reach the
  server (connect errors, 429, 503 with ``Retry-After``) — anything else raises and
  the provider reconciles by launch id;
- **one mapping** of HTTP failures to :mod:`runctl.errors`, which a provider
  may refine (e.g. to spot "no capacity" in a 400 body) with ``classify``;
- **redaction**: credentials are sent through an ``httpx.Auth`` and never put in
  the client's default headers; secrets are scrubbed from every error message and
  log line this module produces.

Providers call :meth:`HttpApi.request` (or ``get``/``post``/``delete``) and get
parsed JSON back.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import clock
from .config import Secret
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    MalformedResponseError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)

__all__ = [
    "REDACTED",
    "HttpApi",
    "RetryPolicy",
    "check_base_url",
    "redact",
]

logger = logging.getLogger("runctl.http")

REDACTED = "***"
_SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "x-auth-token",
    }
)
_SENSITIVE_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "secret"})
_REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-correlation-id",
    "cf-ray",
)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Methods that only read: a 500 to them is retried too (nothing was changed, and an
#: API's transient 500 on a read is common), while a 500 to a write may hide a change.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_LIMIT = 2000


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of each secret in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def check_base_url(provider: str, url: str) -> str:
    """Accept https anywhere and plain http only for loopback addresses.

    Raises:
        ConfigurationError: the URL is not usable.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host:
        if host == "localhost":
            return url.rstrip("/")
        try:
            if ipaddress.ip_address(host).is_loopback:
                return url.rstrip("/")
        except ValueError:
            pass
        raise ConfigurationError(
            f"{provider}: base URL {url!r} uses plain http; allowed: https, or http to a "
            "loopback address (127.0.0.0/8, ::1, localhost)"
        )
    raise ConfigurationError(f"{provider}: base URL {url!r} is not an http(s) URL")


class _SecretAuth(httpx.Auth):
    """Puts the credential on each request, so it never sits in the client's headers."""

    def __init__(self, header: str, secret: Secret, scheme: str | None) -> None:
        self._header = header
        self._secret = secret
        self._scheme = scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self._secret.reveal()
        request.headers[self._header] = f"{self._scheme} {value}" if self._scheme else value
        yield request

    def __repr__(self) -> str:
        return f"_SecretAuth(header={self._header!r}, secret={self._secret!r})"


class RetryPolicy:
    """Exponential backoff with full jitter.

    Args:
        attempts: total tries, the first included.
        base: seconds before the first retry (before jitter).
        cap: the longest single wait, in seconds; a Retry-After longer than this
            is not waited for: the error is raised with ``retry_after`` set.
        rng: random source (for tests).
        connect_attempts: tries when the connection itself is refused or the name does
            not resolve. Kept low: that is what "no network" looks like, and callers
            such as ``offers()`` should fall back to the snapshot at once, not in 8 s.
    """

    def __init__(
        self,
        attempts: int = 5,
        base: float = 0.5,
        cap: float = 30.0,
        rng: random.Random | None = None,
        connect_attempts: int = 2,
    ) -> None:
        self.attempts = attempts
        self.connect_attempts = connect_attempts
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return self._rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock.now().timestamp())


def _request_id(response: httpx.Response) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        if name in response.headers:
            return response.headers[name]
    return None


def _safe_url(url: httpx.URL) -> str:
    params = [
        (k, REDACTED if k.lower() in _SENSITIVE_PARAMS else v) for k, v in url.params.multi_items()
    ]
    return str(url.copy_with(params=params or None))


Classifier = Callable[[httpx.Response, str], "ProviderError | None"]


class HttpApi:
    """A provider's HTTP client: base URL, credentials, timeouts, retries, error mapping.

    Args:
        provider: provider name, put on every error.
        base_url: API root; https, or http to loopback only.
        secret: the credential, or ``None`` for unauthenticated APIs.
        auth_header: header that carries it.
        auth_scheme: prefix such as ``"Bearer"``; ``None`` sends the bare value.
        timeout: an ``httpx.Timeout``; default connect 10 s, everything else 30 s.
        retry: the retry policy.
        classify: a provider hook that turns an error response into a more precise
            error (capacity, quota ...); return ``None`` to use the default mapping.
        transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
        sleep: the async sleep used between retries; default :func:`runctl.clock.sleep`.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        secret: Secret | None = None,
        auth_header: str = "Authorization",
        auth_scheme: str | None = "Bearer",
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        classify: Classifier | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        from ._version import __version__

        self.provider = provider
        self.base_url = check_base_url(provider, base_url)
        self.retry = retry or RetryPolicy()
        self._classify = classify
        self._secrets = (secret.reveal(),) if secret is not None else ()
        self._sleep = sleep or clock.sleep
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            auth=_SecretAuth(auth_header, secret, auth_scheme) if secret is not None else None,
            timeout=timeout or httpx.Timeout(30.0, connect=10.0),
            transport=transport,
            headers={"User-Agent": f"runctl/{__version__}", **(headers or {})},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<HttpApi {self.provider} {self.base_url}>"

    async def aclose(self) -> None:
        """Close the underlying connections."""
        await self._client.aclose()

    def redact(self, text: str) -> str:
        """Scrub this API's secrets from ``text``."""
        return redact(text, self._secrets)

    async def get(self, path: str, **kw: Any) -> Any:
        """``GET`` and parse JSON."""
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        """``POST`` and parse JSON (not retried once it may have reached the server)."""
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        """``PUT`` and parse JSON."""
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Any:
        """``PATCH`` and parse JSON."""
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        """``DELETE`` and parse JSON (``None`` for an empty body)."""
        return await self.request("DELETE", path, **kw)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
        expect_json: bool = True,
    ) -> Any:
        """Send a request with the retry policy; return the parsed JSON body.

        Args:
            method: HTTP method.
            path: path below the base URL.
            params: query parameters.
            json_body: a JSON-serialisable body.
            idempotent: override the method's default (GET/PUT/DELETE are idempotent;
                pass ``True`` for a POST the API documents as safe to repeat).
            expect_json: parse the body as JSON (else return the text).

        Raises:
            ProviderError: a subclass of it, mapped from the failure.
        """
        response = await self.send(
            method, path, params=params, json_body=json_body, idempotent=idempotent
        )
        return self.parse(response, expect_json=expect_json)

    def parse(self, response: httpx.Response, *, expect_json: bool = True) -> Any:
        """Parse a successful response's body."""
        if not expect_json:
            return response.text
        if not response.content.strip():
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            # No body on this error: a successful answer carries the user's own data
            # (a pod's env, say), which only the API key redaction would not cover.
            kind = response.headers.get("content-type", "unknown type")
            raise MalformedResponseError(
                f"{response.request.method} {response.request.url.path}: response is not "
                f"JSON ({len(response.content)} bytes of {kind}; truncated?)",
                provider=self.provider,
                status=response.status_code,
                request_id=_request_id(response),
            ) from e

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with retries and return the successful response (2xx/3xx)."""
        method = method.upper()
        safe_to_repeat = method in _IDEMPOTENT if idempotent is None else idempotent
        attempt = 0
        refused = 0
        while True:
            attempt += 1
            started = clock.monotonic()
            try:
                response = await self._client.request(method, path, params=params, json=json_body)
            except httpx.TransportError as e:
                reached = not isinstance(
                    e, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
                )
                error = self._transport_error(method, path, e, maybe_applied=reached)
                refused += isinstance(e, httpx.ConnectError)
                if (
                    attempt < self.retry.attempts
                    and refused < self.retry.connect_attempts
                    and (safe_to_repeat or not reached)
                ):
                    await self._wait(attempt, None, error)
                    continue
                raise error from e
            logger.debug(
                "%s %s -> %s in %.0f ms",
                method,
                _safe_url(response.request.url),
                response.status_code,
                (clock.monotonic() - started) * 1000,
            )
            if response.status_code < 400:
                return response
            failure = self.error_for(response)
            retry_after = _retry_after(response)
            # 429 means "not processed"; so does 503 with Retry-After by convention.
            not_processed = response.status_code == 429 or (
                response.status_code == 503 and retry_after is not None
            )
            retryable = response.status_code in _RETRY_STATUSES or (
                response.status_code == 500 and method in _READS
            )
            if (
                retryable
                and attempt < self.retry.attempts
                and (safe_to_repeat or not_processed)
                and (retry_after is None or retry_after <= self.retry.cap)
            ):
                await self._wait(attempt, retry_after, failure)
                continue
            raise failure

    async def _wait(self, attempt: int, retry_after: float | None, error: ProviderError) -> None:
        delay = retry_after if retry_after is not None else self.retry.backoff(attempt)
        logger.info("%s; retry %d in %.2f s", error, attempt, delay)
        await self._sleep(delay)

    def _transport_error(
        self, method: str, path: str, e: httpx.TransportError, *, maybe_applied: bool
    ) -> ProviderConnectionError:
        kind = (
            ProviderTimeoutError
            if isinstance(e, httpx.TimeoutException)
            else ProviderConnectionError
        )
        what = "timed out" if kind is ProviderTimeoutError else f"failed ({type(e).__name__})"
        error = kind(self.redact(f"{method} {path} {what}"), provider=self.provider)
        error.maybe_applied = maybe_applied
        return error

    def _body(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except (UnicodeDecodeError, httpx.ResponseNotRead):
            return ""
        # Redacted before it is cut: a cut through a key would leave its prefix.
        return self.redact(text)[:_BODY_LIMIT]

    def error_for(self, response: httpx.Response) -> ProviderError:
        """Map an error response to the error tree (the provider's ``classify`` first)."""
        body = self._body(response)
        message = _error_message(body) or response.reason_phrase or "request failed"
        message = self.redact(f"{response.request.method} {response.request.url.path}: {message}")
        if self._classify is not None:
            refined = self._classify(response, message)
            if refined is not None:
                return refined
        kw: dict[str, Any] = {
            "provider": self.provider,
            "status": response.status_code,
            "request_id": _request_id(response),
            "body": body,
        }
        status = response.status_code
        if status in (401, 403):
            return AuthenticationError(message, **kw)
        if status == 404:
            return NotFoundError(message, **kw)
        if status == 409:
            return ConflictError(message, **kw)
        if status == 429:
            return RateLimitedError(message, retry_after=_retry_after(response), **kw)
        if status >= 500:
            return ServerError(message, **kw)
        return ProviderError(message, **kw)

    def error_kwargs(self, response: httpx.Response) -> dict[str, Any]:
        """The keyword arguments every ``ProviderError`` for ``response`` carries."""
        return {
            "provider": self.provider,
            "status": response.status_code,
            "request_id": _request_id(response),
            "body": self._body(response),
        }

    async def stream_lines(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[str]:
        """Stream a text response line by line (for log endpoints).

        Not retried: a broken stream raises :class:`~runctl.errors.ProviderConnectionError`
        (:class:`~runctl.errors.ProviderTimeoutError` for a quiet one) and the caller
        decides whether to reconnect from where it was.
        """
        try:
            async with self._client.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self.error_for(response)
                async for line in response.aiter_lines():
                    yield line
        except httpx.TransportError as e:
            raise self._transport_error("GET", path, e, maybe_applied=False) from e


def _error_message(body: str) -> str | None:
    """Pull a human message out of the common JSON error shapes."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        text = body.strip()
        return text[:300] or None
    if isinstance(data, dict):
        for key in ("error", "message", "msg", "detail", "errors"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                inner = value.get("message") or value.get("code")
                if isinstance(inner, str):
                    return inner
            if isinstance(value, list) and value:
                first = value[0]
                if isinstance(first, str):
                    return first
                if isinstance(first, dict) and isinstance(first.get("message"), str):
                    return str(first["message"])
    if isinstance(data, str):
        return data
    return body.strip()[:300] or None
