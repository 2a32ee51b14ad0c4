"""The one exception tree of runctl.

Every error runctl raises on purpose is a :class:`RunctlError`; errors from the
libraries underneath (httpx, boto3, subprocess ...) are wrapped with
``raise ... from`` so the original stays on ``__cause__``. No message, repr or
attribute of these errors ever holds a credential.

::

    RunctlError
    ├── ConfigurationError                 settings or credentials are missing or wrong
    │   ├── MissingCredentialsError        a provider has no credentials here
    │   └── LedgerError                    the ledger cannot be read or written (corrupt, full ...)
    ├── ValidationError (ValueError)       bad input; names the field and the allowed values
    │   └── CurrencyMismatchError          two currencies met with no rate to convert
    ├── PluginError                        a provider plugin is broken or clashes with another
    ├── UnsupportedOperationError          the provider lacks the capability (e.g. stop on Lambda)
    ├── ProviderError                      a provider failed; carries provider, status, request_id
    │   ├── AuthenticationError            401/403: credentials refused
    │   ├── NotFoundError                  the resource or endpoint does not exist
    │   ├── ConflictError                  the request clashes with the resource's current state
    │   ├── RateLimitedError               429; ``retry_after`` seconds when the provider says
    │   ├── CapacityError                  no machine of that kind is available now
    │   ├── QuotaExceededError             the account's limit is reached
    │   ├── ServerError                    5xx from the provider
    │   ├── ProviderConnectionError        the provider could not be reached
    │   │   └── ProviderTimeoutError       ... or did not answer in time
    │   └── MalformedResponseError         the answer could not be understood
    └── LifecycleError                     the resource's life did not go as asked
        ├── InvalidTransitionError         e.g. start a terminated resource
        ├── WaitTimeoutError               ``wait`` ran out of time
        ├── ResourceEndedError             ``wait``'s state can no longer be reached
        ├── BudgetExceededError            a launch would break a spending limit
        └── TerminationUnverifiedError     terminate was sent but the provider never confirmed it
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Resource, ResourceState

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "CapacityError",
    "ConfigurationError",
    "ConflictError",
    "CurrencyMismatchError",
    "InvalidTransitionError",
    "LedgerError",
    "LifecycleError",
    "MalformedResponseError",
    "MissingCredentialsError",
    "NotFoundError",
    "PluginError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitedError",
    "ResourceEndedError",
    "RunctlError",
    "ServerError",
    "TerminationUnverifiedError",
    "UnsupportedOperationError",
    "ValidationError",
    "WaitTimeoutError",
]


class RunctlError(Exception):
    """Base of every error runctl raises on purpose."""


#: Every credential value this process holds (each :class:`~runctl.config.Secret` adds
#: its own), so an error body is redacted before it is kept, whoever built the error.
_KNOWN_SECRETS: set[str] = set()
_MASK = "***"


def _remember_secret(value: str) -> None:
    if len(value) >= 4:
        _KNOWN_SECRETS.add(value)


def redact_known(text: str) -> str:
    """``text`` with every credential this process holds replaced by ``***``."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


class ConfigurationError(RunctlError):
    """A setting or credential is missing or malformed."""


class MissingCredentialsError(ConfigurationError):
    """A provider has no usable credentials on this machine.

    Attributes:
        provider: the provider's name.
        looked_in: where runctl looked (environment variable names, file paths).
    """

    def __init__(self, provider: str, looked_in: tuple[str, ...], hint: str = "") -> None:
        self.provider = provider
        self.looked_in = looked_in
        where = ", ".join(looked_in) or "nowhere"
        message = f"{provider}: no credentials found (looked in: {where})"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class LedgerError(ConfigurationError):
    """The ledger (``ledger.sqlite3``) cannot be read or written.

    Attributes:
        path: the database file.
        reason: ``"corrupt"``, ``"read-only"``, ``"full"`` (no space, or an I/O
            error), ``"locked"`` (another process held it past the timeout),
            ``"missing"`` (deleted or replaced while in use), ``"bad-row"`` or
            ``"unavailable"``.
    """

    def __init__(self, path: object, reason: str, message: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"ledger {path}: {message}")


class ValidationError(RunctlError, ValueError):
    """User input is invalid.

    Attributes:
        field: dotted path of the offending field, e.g. ``"spec.gpu_count"``.
        allowed: a human description of the allowed values, when there is one.
    """

    def __init__(self, field: str, problem: str, *, allowed: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        message = f"{field}: {problem}"
        if allowed:
            message += f" (allowed: {allowed})"
        super().__init__(message)


class CurrencyMismatchError(ValidationError):
    """Two amounts in different currencies met with no exchange rate given."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(
            "currency",
            f"cannot combine {left} with {right} without an exchange rate",
            allowed=f"amounts in {left} only, or pass rates={{'{right}': ...}}",
        )


class PluginError(RunctlError):
    """A provider plugin failed to load, does not satisfy the protocol, or clashes."""


class UnsupportedOperationError(RunctlError):
    """The provider does not support this operation (see its ``capabilities``)."""

    def __init__(self, provider: str, operation: str, reason: str = "") -> None:
        self.provider = provider
        self.operation = operation
        message = f"{provider} does not support {operation}"
        if reason:
            message += f": {reason}"
        super().__init__(message)


class ProviderError(RunctlError):
    """A provider's API failed.

    Attributes:
        provider: the provider's name.
        status: the HTTP status, when there was one.
        request_id: the provider's request id, for its support desk.
        body: the (redacted, truncated) response body, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        request_id: str | None = None,
        body: str | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.request_id = request_id
        # Redacted here, whoever built the error: a body is kept and may be shown.
        self.body = None if body is None else redact_known(body)
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.message}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"status={self.status!r}, request_id={self.request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_provider_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_provider_error(
    cls: type[ProviderError], message: str, state: dict[str, Any]
) -> ProviderError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class AuthenticationError(ProviderError):
    """The provider refused the credentials (HTTP 401 or 403)."""


class NotFoundError(ProviderError):
    """The resource (or endpoint) does not exist at the provider."""


class ConflictError(ProviderError):
    """The request clashes with the current state of the resource (HTTP 409)."""


class RateLimitedError(ProviderError):
    """The provider is rate limiting us.

    Attributes:
        retry_after: seconds the provider asked us to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CapacityError(ProviderError):
    """No machine of the requested kind is available right now."""


class QuotaExceededError(ProviderError):
    """The account's quota or limit for this resource is reached."""


class ServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx)."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or the connection broke.

    Attributes:
        maybe_applied: the request may have reached the provider before the
            connection failed (e.g. a read timeout on a create): the caller must
            look before it tries again.
    """

    maybe_applied: bool = False


class ProviderTimeoutError(ProviderConnectionError):
    """The provider did not answer in time."""


class MalformedResponseError(ProviderError):
    """The provider answered something runctl cannot parse."""


class LifecycleError(RunctlError):
    """A resource's life did not go as asked."""


class InvalidTransitionError(LifecycleError):
    """The requested change is not legal from the resource's current state."""

    def __init__(self, resource_id: str, current: ResourceState, wanted: ResourceState) -> None:
        self.resource_id = resource_id
        self.current = current
        self.wanted = wanted
        super().__init__(f"{resource_id}: cannot go from {current.value} to {wanted.value}")


class WaitTimeoutError(LifecycleError):
    """``wait`` gave up before the resource reached the wanted state.

    Attributes:
        resource: the last observed resource.
    """

    def __init__(self, resource: Resource, wanted: str, timeout: float) -> None:
        self.resource = resource
        super().__init__(
            f"{resource.id}: still {resource.state.value} after {timeout:g}s waiting for {wanted}"
        )


class ResourceEndedError(LifecycleError):
    """``wait``'s state can no longer be reached.

    Attributes:
        resource: the resource in its final state.
    """

    def __init__(self, resource: Resource, wanted: str) -> None:
        self.resource = resource
        detail = f"{resource.state.value}"
        if resource.exit_code is not None:
            detail += f", exit code {resource.exit_code}"
        super().__init__(f"{resource.id}: ended ({detail}) before reaching {wanted}")


class BudgetExceededError(LifecycleError):
    """A launch would exceed a configured spending limit."""


class TerminationUnverifiedError(LifecycleError):
    """Terminate was requested but the provider never reported the resource gone."""
