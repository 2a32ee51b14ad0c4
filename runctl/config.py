"""Where settings and credentials come from.

Order, first match wins:

1. the environment (each provider's own conventional variables, e.g.
   ``RUNPOD_API_KEY``, and runctl's ``RUNCTL_<PROVIDER>_<SETTING>``);
2. the config file, ``config.toml`` in the runctl home;
3. the provider's own tool's files where it has them (e.g. the vastai CLI's key file);
4. defaults.

The runctl home is ``$RUNCTL_HOME`` if set, else the user's config dir
(``$XDG_CONFIG_HOME/runctl`` or ``~/.config/runctl`` on Linux,
``~/Library/Application Support/runctl`` on macOS, ``%APPDATA%\\runctl`` on
Windows). It also holds runctl's state: the local provider's resources, the
ledger and the refreshed price catalog.

A config file looks like::

    default_provider = "local"
    offer_timeout = 10        # seconds, per provider, for offers()
    max_snapshot_age_days = 30

    [providers.runpod]
    api_key = "..."           # better: RUNPOD_API_KEY in the environment
    base_url = "https://api.runpod.io"

Secrets are held in :class:`Secret`, whose repr and str never show the value;
the reprs of :class:`Settings` and :class:`ProviderConfig` mask credential-like
keys (``api_key``, tokens, secrets, passwords) of the config file's tables.
A top-level key runctl does not know is warned about when the file is read, and
:func:`config_problems` (``runctl doctor``) lists every problem of the file.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigurationError

__all__ = [
    "ProviderConfig",
    "Secret",
    "Settings",
    "config_problems",
    "load_settings",
    "open_private",
    "private_dir",
    "runctl_home",
]

logger = logging.getLogger("runctl.config")

#: Setting names whose values are credentials: masked in every repr.
_SECRET_KEY = re.compile(r"key|token|secret|password|passwd|credential", re.IGNORECASE)
#: ... unless the name says the value only names or locates one (``ssh_key_name``).
_NOT_SECRET = re.compile(r"_(name|names|id|file|path|url)$", re.IGNORECASE)


def _masked(table: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: "***"
        if isinstance(key, str) and _SECRET_KEY.search(key) and not _NOT_SECRET.search(key)
        else value
        for key, value in table.items()
    }


def _repr_table(table: Mapping[str, Any]) -> str:
    return repr(_masked(table))


def _repr_tables(tables: Mapping[str, Mapping[str, Any]]) -> str:
    return repr({
        name: _masked(table) if isinstance(table, Mapping) else table
        for name, table in tables.items()
    })


class Secret:
    """A credential. Its repr and str are masked; :meth:`reveal` gives the value.

    Args:
        value: the secret.
        source: where it came from (e.g. ``"env RUNPOD_API_KEY"``), safe to show.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        from .errors import _remember_secret

        _remember_secret(value)

    def reveal(self) -> str:
        """The secret itself. Only pass it to the provider; never log it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r}, value='***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def runctl_home(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding runctl's config file and state."""
    env = os.environ if environ is None else environ
    if env.get("RUNCTL_HOME"):
        return Path(env["RUNCTL_HOME"]).expanduser()
    if sys.platform == "win32":  # pragma: no cover - not tested on these machines
        return Path(env.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "runctl"
    if sys.platform == "darwin":  # pragma: no cover
        return Path.home() / "Library" / "Application Support" / "runctl"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runctl"


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents readable by this user only (mode 0700).

    Everything runctl keeps in its home (the ledger, local resources' logs and
    metadata) is the user's business alone. Directories that exist are left as they are.
    """
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """Open ``path`` with ``flags``, created readable and writable by this user only (0600)."""
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except (FileNotFoundError, NotADirectoryError):  # no file there (the home may not exist)
        return {}
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"{path}: cannot read config file: {e}") from e


def _positive_number(name: str, value: object, *, most: float = math.inf) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if not 0 < number <= most or not math.isfinite(number):
        limit = "" if most == math.inf else f" and at most {most:g}"
        raise ConfigurationError(f"config {name}: {value!r} is not a finite number > 0{limit}")
    return number


#: ``runctl.models.MAX_TTL`` in hours (not imported: config loads before the models).
_MAX_TTL_HOURS = 3650 * 24.0


def _optional_limit(name: str, value: object) -> float | None:
    return None if value is None else _positive_number(name, value)


@attrs.frozen(kw_only=True)
class ProviderConfig:
    """Everything a provider may read to configure itself. Given to the provider's constructor.

    Attributes:
        name: the provider's name.
        home: the runctl home; providers keep their state under ``home / name``.
        settings: the ``[providers.<name>]`` table of the config file (credentials
            in it, such as ``api_key``, are masked in the repr).
        environ: the environment (a snapshot, so tests can pass their own).
    """

    name: str
    home: Path
    settings: Mapping[str, Any] = attrs.field(factory=dict, repr=_repr_table)
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)

    @property
    def state_dir(self) -> Path:
        """A directory this provider may keep files in (created on demand by the provider)."""
        return self.home / "providers" / self.name

    def setting(
        self, key: str, *, env: tuple[str, ...] = (), default: str | None = None
    ) -> str | None:
        """A setting: ``env`` vars, ``RUNCTL_<NAME>_<KEY>``, the file, then ``default``."""
        names = (*env, f"RUNCTL_{self.name.upper()}_{key.upper()}")
        for var in names:
            value = self.environ.get(var)
            if value:
                return value
        value = self.settings.get(key)
        if value is not None:
            return str(value)
        return default

    def secret(
        self, key: str, *, env: tuple[str, ...] = (), files: tuple[Path, ...] = ()
    ) -> Secret | None:
        """A credential: ``env`` variables, then the config file's ``key``, then ``files``.

        A file's first non-empty line is the secret (as the vastai CLI stores its key).
        """
        for var in env:
            value = self.environ.get(var, "").strip()
            if value:
                return Secret(value, f"env {var}")
        configured = self.settings.get(key)
        if isinstance(configured, str) and configured.strip():
            return Secret(configured.strip(), f"config file [providers.{self.name}] {key}")
        for path in files:
            try:
                text = path.expanduser().read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.strip():
                    return Secret(line.strip(), f"file {path}")
        return None


@attrs.frozen(kw_only=True)
class Settings:
    """runctl's own settings.

    Attributes:
        home: the runctl home.
        default_provider: provider used when a spec names none.
        offer_timeout: seconds each provider gets to answer ``offers()``.
        max_snapshot_age_days: warn when the offline price snapshot is older.
        default_ttl_hours: TTL applied to launches that set none (24 hours unless
            configured; at most ten years).
        max_hourly_spend: the most everything running may cost per hour, in USD,
            checked before each launch (``None``: no limit).
        max_total_spend: the most all launches in the ledger may cost, in USD, the new
            one counted for its whole TTL (``None``: no limit).
        providers: per-provider tables from the config file (credentials masked in the repr).
        environ: the environment the settings were read from.
    """

    home: Path
    default_provider: str = "local"
    offer_timeout: float = 10.0
    max_snapshot_age_days: float = 30.0
    default_ttl_hours: float | None = 24.0
    max_hourly_spend: float | None = None
    max_total_spend: float | None = None
    providers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, repr=_repr_tables)
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)

    def provider_config(self, name: str) -> ProviderConfig:
        """The config handed to provider ``name``."""
        table = self.providers.get(name, {})
        return ProviderConfig(name=name, home=self.home, settings=table, environ=self.environ)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment and the config file.

    Raises:
        ConfigurationError: the config file is unreadable or holds a bad value.
    """
    env = dict(os.environ if environ is None else environ)
    home = runctl_home(env)
    return _settings_from(env, home, _read_toml(home / "config.toml"), warn=True)


def _settings_from(
    env: Mapping[str, str], home: Path, data: Mapping[str, Any], *, warn: bool
) -> Settings:
    providers = data.get("providers", {})
    if not isinstance(providers, dict):
        raise ConfigurationError("config providers: must be a table of [providers.<name>] tables")

    def pick(key: str, default: Any) -> Any:
        return env.get(f"RUNCTL_{key.upper()}") or data.get(key, default)

    for problem in _unknown_keys(data) if warn else ():
        logger.warning("%s: %s", home / "config.toml", problem)

    ttl = pick("default_ttl_hours", 24.0)
    return Settings(
        home=home,
        default_provider=str(pick("default_provider", "local")),
        offer_timeout=_positive_number("offer_timeout", pick("offer_timeout", 10.0)),
        max_snapshot_age_days=_positive_number(
            "max_snapshot_age_days", pick("max_snapshot_age_days", 30.0)
        ),
        default_ttl_hours=_positive_number("default_ttl_hours", ttl, most=_MAX_TTL_HOURS),
        max_hourly_spend=_optional_limit("max_hourly_spend", pick("max_hourly_spend", None)),
        max_total_spend=_optional_limit("max_total_spend", pick("max_total_spend", None)),
        providers=providers,
        environ=env,
    )


def _known_keys() -> list[str]:
    # Every Settings field is a top-level key of the file, except what is not read from it.
    return sorted({f.name for f in attrs.fields(Settings)} - {"home", "environ"})


def _unknown_keys(data: Mapping[str, Any]) -> list[str]:
    known = _known_keys()
    problems = []
    for key in data:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        problems.append(f"unknown key {key!r} ignored ({hint})")
    return problems


def config_problems(
    environ: Mapping[str, str] | None = None, *, providers: Sequence[str] | None = None
) -> list[str]:
    """What is wrong in the config file, each as a sentence naming the key (empty: nothing).

    Checks: the file reads and every value is valid (as :func:`load_settings` does),
    every top-level key is one runctl knows (with the nearest known key for a typo),
    every ``[providers.<name>]`` is a table, and, when ``providers`` (the installed
    provider names) is given, that ``default_provider`` and each provider table name
    one of them. A provider's own keys are checked by the provider (``runctl doctor``).

    Args:
        environ: the environment (default: ``os.environ``).
        providers: the names of the installed providers.
    """
    env = dict(os.environ if environ is None else environ)
    path = runctl_home(env) / "config.toml"
    try:
        data = _read_toml(path)
        settings = _settings_from(env, path.parent, data, warn=False)
    except ConfigurationError as e:
        return [str(e)]
    problems = [f"{path}: {problem}" for problem in _unknown_keys(data)]
    tables = data.get("providers", {})
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            problems.append(f"{path}: providers.{name}: must be a table ([providers.{name}])")
        elif providers is not None and name not in providers:
            problems.append(
                f"{path}: [providers.{name}]: no provider named {name!r} is installed "
                f"(installed: {', '.join(sorted(providers))})"
            )
    if providers is not None and settings.default_provider not in providers:
        problems.append(
            f"default_provider: {settings.default_provider!r} is not an installed provider "
            f"(allowed: {', '.join(sorted(providers))})"
        )
    return problems
