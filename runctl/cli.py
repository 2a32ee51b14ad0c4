"""The ``runctl`` command: a thin layer over :class:`runctl.Client`.

Every listing command takes ``--json`` for output other tools can read.
Exit codes: 0 success; 1 a runctl error (message on stderr); 2 bad usage;
``runctl run`` exits with the workload's own exit code, or 124 when ``--timeout``
ended it; 130 after Ctrl-C. SIGTERM and SIGHUP are handled like Ctrl-C (what was
launched is torn down first) and exit ``128 + N``: 143 after SIGTERM, 129 after SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client
    from .models import Resource

__all__ = ["main"]


def _client() -> Client:
    from .client import Client

    return Client()


def _print_json(data: Any) -> None:
    from ._convert import unstructure

    print(json.dumps(unstructure(data), indent=2, sort_keys=True))


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _money(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value.rounded(4).amount:f} {value.currency}"


def _resource_rows(resources: Sequence[Resource]) -> str:
    rows = [
        (
            r.id,
            r.provider,
            r.name or "-",
            r.state.value,
            r.raw_state or "-",
            "-" if r.exit_code is None else str(r.exit_code),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S") if r.created_at else "-",
        )
        for r in resources
    ]
    return _table(rows, ("id", "provider", "name", "state", "raw", "exit", "created"))


# --- commands -----------------------------------------------------------------------------------


def cmd_providers(args: argparse.Namespace) -> int:
    from .registry import list_providers

    infos = list_providers(check=not args.no_check)
    if args.json:
        _print_json(list(infos))
        return 0
    rows = []
    for info in infos:
        if info.error:
            status = "broken"
        elif info.usable is None:
            status = "not checked"
        else:
            status = "usable" if info.usable else "not usable"
        rows.append((info.name, status, info.error or info.reason or "", info.distribution or ""))
    print(_table(rows, ("provider", "status", "detail", "from")))
    return 0


def _home_problem(home: Any) -> str | None:
    """Why runctl cannot keep its state in ``home``, or ``None`` when it can."""
    import os
    import tempfile

    try:
        home.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=home, prefix=".doctor-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return (
            f"home {home} is not writable ({e.strerror or e}): the ledger and the price "
            "catalog cannot be kept; fix its permissions or set RUNCTL_HOME"
        )
    return None


def _setting_problems(settings: Any, infos: Sequence[Any]) -> list[str]:
    """Keys in ``[providers.<name>]`` tables that the provider does not read."""
    import difflib

    from .registry import default_registry

    registry = default_registry()
    problems = []
    for info in infos:
        table = settings.providers.get(info.name)
        if info.error or not isinstance(table, dict) or not table:
            continue
        keys = getattr(registry.load(info.name), "setting_keys", None)
        if keys is None:
            continue  # the provider does not say which keys it reads
        for key in table:
            if key in keys:
                continue
            close = difflib.get_close_matches(str(key), list(keys), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(keys)}"
            problems.append(f"[providers.{info.name}] {key}: unknown key, ignored ({hint})")
    return problems


def _online(infos: Sequence[Any], timeout: float | None) -> dict[str, tuple[str, str]]:
    """Per usable provider: (``"ok"``/``"failed"``/``"not checked"``, what happened)."""
    from .errors import RunctlError, UnsupportedOperationError

    results: dict[str, tuple[str, str]] = {}
    with _client() as rc:
        for info in infos:
            if info.error or not info.usable:
                continue
            try:
                results[info.name] = ("ok", rc.verify(info.name, timeout=timeout))
            except UnsupportedOperationError:
                results[info.name] = ("not checked", "the provider offers no online check")
            except RunctlError as e:
                results[info.name] = ("failed", _prefixed(info.name, str(e)))
    return results


def cmd_doctor(args: argparse.Namespace) -> int:
    from .config import config_problems, load_settings
    from .errors import ConfigurationError
    from .registry import list_providers

    infos = list_providers(check=True)
    problems = config_problems(providers=[i.name for i in infos])
    try:
        settings = load_settings()
    except ConfigurationError:
        from .config import Settings, runctl_home

        settings = Settings(home=runctl_home())  # the problem is already in the list
    problems += _setting_problems(settings, infos)
    default = next((i for i in infos if i.name == settings.default_provider), None)
    if default is not None and default.usable is False:
        problems.append(
            f"default_provider: {default.name!r} is not usable here: {default.reason}"
        )
    home_problem = _home_problem(settings.home)
    if home_problem:
        problems.append(home_problem)
    online = _online(infos, args.timeout) if args.online else {}
    report = {
        "home": str(settings.home),
        "home_writable": home_problem is None,
        "config_file": str(settings.home / "config.toml"),
        "config_file_exists": (settings.home / "config.toml").exists(),
        "default_provider": settings.default_provider,
        "python": sys.version.split()[0],
        "problems": problems,
        "providers": [
            {"name": i.name, "ok": i.ok, "usable": i.usable, "reason": i.reason, "error": i.error,
             **({"online": dict(zip(("result", "detail"), online[i.name]))}
                if i.name in online else {})}
            for i in infos
        ],
    }
    broken = [i for i in infos if i.error]
    failed = [name for name, (result, _) in online.items() if result == "failed"]
    code = 1 if broken or problems or failed else 0
    if args.json:
        print(json.dumps(report, indent=2))
        return code
    from ._version import __version__

    print(f"runctl {__version__} on Python {report['python']}")
    found = "found" if report["config_file_exists"] else "absent"
    writable = "writable" if home_problem is None else "NOT writable"
    print(f"home: {report['home']} ({writable}; config file {found})")
    print(f"default provider: {settings.default_provider}")
    for problem in problems:
        print(f"  [problem] {problem}")
    for info in infos:
        if info.error:
            print(f"  [broken]  {info.name}: {info.error}")
        elif info.usable:
            print(f"  [ok]      {info.name}: {info.reason or 'usable'}")
        else:
            print(f"  [no]      {info.name}: {info.reason or 'not usable here'}")
        if info.name in online:
            result, detail = online[info.name]
            label = {"ok": "online ok", "failed": "online FAILED"}.get(result, result)
            print(f"            {label}: {detail}")
    if not args.online:
        print("(credentials not tried: `runctl doctor --online` makes one call per provider)")
    return code


def cmd_offers(args: argparse.Namespace) -> int:
    from .models import OfferQuery

    query = OfferQuery(
        gpu=args.gpu,
        count=args.count,
        min_gpu_memory_gb=args.min_gpu_memory,
        min_vcpus=args.min_vcpus,
        min_memory_gb=args.min_memory,
        max_per_hour=args.max_per_hour,
        max_per_gpu_hour=args.max_per_gpu_hour,
        spot=args.spot,
        regions=tuple(args.region or ()),
        providers=tuple(args.provider or ()),
        sort=args.sort,
        limit=args.limit,
    )
    with _client() as rc:
        found = rc.offers(query, live=not args.snapshot_only, timeout=args.timeout)
    if args.json:
        print(json.dumps({"offers": found.to_records(), "errors": {
            k: str(v) for k, v in found.errors.items()}}, indent=2, default=str))
        return 0
    print(found.format_table())
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from . import catalog
    from .config import load_settings

    if args.action == "refresh":
        with _client() as rc:
            snapshot = rc.refresh_catalog(providers=args.provider or None, timeout=args.timeout)
    else:
        snapshot = catalog.load_snapshot(load_settings(), warn=False)
    rows = [
        (name, p.source, p.observed_at.date().isoformat(), str(p.rows), p.note or p.origin)
        for name, p in sorted(snapshot.provenance.items())
    ]
    if args.json:
        print(json.dumps({
            "path": str(snapshot.path),
            "observed_at": snapshot.observed_at.isoformat(),
            "providers": {name: {"source": s, "observed": o, "rows": int(r), "note": n}
                          for name, s, o, r, n in rows},
        }, indent=2))
        return 0
    age = snapshot.age().days
    print(f"snapshot: {snapshot.path} ({len(snapshot.offers):,} offers, {age} days old)")
    print(_table(rows, ("provider", "source", "observed", "offers", "from")))
    return 0


def _ttl(minutes: float | None) -> timedelta | None:
    """``--ttl MINUTES`` as a duration: finite, > 0, at most MAX_TTL (or not given)."""
    if minutes is None:
        return None
    import math

    from .errors import ValidationError
    from .models import MAX_TTL

    most = MAX_TTL.total_seconds() / 60
    if not math.isfinite(minutes) or not 0 < minutes <= most:
        raise ValidationError(
            "--ttl", f"{minutes!r} minutes is not a TTL", allowed=f"minutes > 0, at most {most:g}"
        )
    return timedelta(minutes=minutes)


def _safe_stdout() -> None:
    # Output is the job's own text: characters this terminal cannot show are replaced,
    # never a crash (a pipe or a C locale is not UTF-8).
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")


def _spec_from(args: argparse.Namespace) -> Any:
    from .models import LaunchSpec

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if args.shell:
        if len(command) != 1:
            from .errors import ValidationError

            raise ValidationError(
                "--shell", f"{len(command)} arguments given",
                allowed="one shell command after --, quoted: --shell -- 'a && b'",
            )
        command = command[0]
    env = {}
    for item in args.env or ():
        key, sep, value = item.partition("=")
        if not sep:
            from .errors import ValidationError

            raise ValidationError("--env", f"{item!r} has no '='", allowed="NAME=VALUE")
        env[key] = value
    tags = {}
    for item in args.tag or ():
        key, sep, value = item.partition("=")
        if not sep:
            from .errors import ValidationError

            raise ValidationError("--tag", f"{item!r} has no '='", allowed="KEY=VALUE")
        tags[key] = value
    options = {}
    if args.ssh_key:
        options["ssh_key_name"] = args.ssh_key
    ssh_public_key = None
    if args.ssh_public_key:
        ssh_public_key = _read_public_key(args.ssh_public_key)
    return LaunchSpec(
        command=command,
        provider=args.provider,
        name=args.name,
        env=env,
        image=args.image,
        gpu=args.gpu,
        gpu_count=args.gpus,
        nodes=args.nodes,
        region=args.region,
        spot=args.spot,
        disk_gb=args.disk,
        workdir=args.workdir,
        tags=tags,
        ttl=_ttl(args.ttl),
        ssh_public_key=ssh_public_key,
        options=options,
        **({"launch_id": args.launch_id} if args.launch_id else {}),
    )


def _read_public_key(path: str) -> str:
    from pathlib import Path

    from .errors import ValidationError

    allowed = "a file holding an OpenSSH public key, e.g. ~/.ssh/id_ed25519.pub"
    try:
        text = Path(path).expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError(
            "--ssh-public-key", f"cannot read {path}: {getattr(e, 'strerror', None) or e}",
            allowed=allowed,
        ) from None
    if "PRIVATE KEY" in text:
        # Never send a private key anywhere: say which file, not what is in it.
        raise ValidationError(
            "--ssh-public-key", f"{path} is a private key", allowed=allowed
        )
    if len(text.split()) < 2:
        raise ValidationError(
            "--ssh-public-key", f"{path} does not hold an OpenSSH public key", allowed=allowed
        )
    return text


def cmd_launch(args: argparse.Namespace) -> int:
    spec = _spec_from(args)
    with _client() as rc:
        res = rc.launch(spec)
        if args.json:
            _print_json(res.resource)
        else:
            print(res.id)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Launch, stream the logs, wait for the end, terminate, and report the cost."""
    from .errors import ValidationError

    spec = _spec_from(args)
    _safe_stdout()
    with _client() as rc:
        try:
            result = rc.run(
                spec,
                timeout=args.timeout,
                start_timeout=args.start_timeout,
                on_log=lambda line: print(line, flush=True),
                progress=_RunProgress(),
            )
        except ValidationError as e:
            if e.field in ("timeout", "start_timeout"):
                flag = "--" + e.field.replace("_", "-")
                raise ValidationError(
                    flag, e.problem.replace("a timeout in seconds", f"{flag} SECONDS"),
                    allowed=e.allowed,
                ) from None
            raise
    if result.logs_error:
        # The outcome and the cost still matter more than the output: never lose them.
        print(f"runctl: reading the logs failed: {result.logs_error}", file=sys.stderr)
    final, done_state = result.resource, result.outcome
    if result.timed_out:
        print(f"runctl: --timeout {args.timeout:g} s reached; terminated", file=sys.stderr)
    took = ""
    if final.started_at and final.ended_at:
        took = f" in {(final.ended_at - final.started_at).total_seconds():.1f} s"
    code = "" if result.exit_code is None else f", exit code {result.exit_code}"
    now = "" if final.state is done_state else f"; now {final.state.value}"
    print(
        f"runctl: {final.id} {done_state.value}{code}{took}{now}; cost {_money(result.cost)}",
        file=sys.stderr,
    )
    if args.json:
        _print_json({"resource": final, "cost": result.cost})
    return result.returncode


class _RunProgress:
    """Says once on stderr where the run was launched."""

    def __init__(self) -> None:
        self.said = False

    def __call__(self, res: Resource) -> None:
        if not self.said:
            self.said = True
            print(f"runctl: launched {res.id} on {res.provider}", file=sys.stderr)


def cmd_ls(args: argparse.Namespace) -> int:
    with _client() as rc:
        listed = rc.list(providers=args.provider or None)
    found = list(listed) if args.all else [r for r in listed if not r.is_terminal]
    if args.json:
        _print_json(found)
    else:
        print(_resource_rows(found))
    # A provider that could not be asked is said, not hidden behind a shorter table.
    for name, error in sorted(listed.errors.items()):
        print(f"runctl: {name}: could not list: {error}", file=sys.stderr)
    return 1 if listed.errors else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    with _client() as rc:
        report = rc.reconcile(providers=args.provider or None)
    if args.json:
        _print_json(
            {
                "adopted": [r.launch_id for r in report.adopted],
                "closed": [r.launch_id for r in report.closed],
                "unknown": [r.launch_id for r in report.unknown],
                "orphans": [r.id for r in report.orphans],
                "pending": [r.launch_id for r in report.pending],
                "errors": dict(report.errors),
            }
        )
        return 0 if report.ok else 1
    for label, records in (
        ("adopted (created, never confirmed)", report.adopted),
        ("closed (gone or never created)", report.closed),
        ("recorded (unknown to the ledger)", report.unknown),
        ("still launching, left alone", report.pending),
    ):
        for record in records:
            print(f"{label}: {record.provider} {record.launch_id} {record.resource_id or '-'}")
    for resource in report.orphans:
        print(f"orphaned: {resource.provider} {resource.id} (run `runctl cleanup`)")
    for name, error in report.errors.items():
        print(f"error: {_prefixed(name, error)}", file=sys.stderr)
    return 0 if report.ok else 1


def _prefixed(name: str, error: str) -> str:
    """``name: error``, without saying the name twice when the error already starts with it."""
    return error if error.startswith(f"{name}: ") else f"{name}: {error}"


def cmd_cleanup(args: argparse.Namespace) -> int:
    with _client() as rc:
        report = rc.cleanup(dry_run=args.dry_run, providers=args.provider or None)
    rows = [
        [
            item.resource.provider,
            item.resource.id,
            ",".join(item.reasons),
            _money(item.cost_so_far),
            "dry run" if report.dry_run else ("terminated" if item.terminated else "FAILED"),
        ]
        for item in report.items
    ]
    if args.json:
        _print_json({"items": [dict(zip(("provider", "id", "reasons", "cost", "result"), r))
                               for r in rows], "errors": dict(report.errors)})
    elif rows:
        print(_table(rows, ["PROVIDER", "ID", "WHY", "COST SO FAR", "RESULT"]))
        print(f"total cost so far: {_money(report.total_cost())}")
    else:
        print("nothing to clean up")
    for item in report.items:
        if item.error:
            print(f"error: {item.resource.id}: {item.error}", file=sys.stderr)
    for name, error in report.errors.items():
        print(f"error: {_prefixed(name, error)}", file=sys.stderr)
    return 0 if report.ok else 1


def _resolve(rc: Client, ref: str, provider: str | None) -> tuple[str, str | None]:
    """(resource id, provider) for what the user typed: a resource id, or a launch's name.

    An id the ledger knows is taken as is; otherwise a name is looked up in the
    ledger (its open launches first). Anything else is passed on as an id, for the
    provider to know or not.

    Raises:
        ValidationError: the name fits several launches (they are listed).
    """
    from .errors import ValidationError

    known = [r for r in rc.ledger.locate(ref) if provider in (None, r.provider)]
    if known:
        return ref, provider or (known[0].provider if len(known) == 1 else None)
    named = [
        r for r in rc.ledger.records()
        if r.name == ref and r.resource_id and provider in (None, r.provider)
    ]
    candidates = [r for r in named if not r.is_closed] or named
    if len(candidates) == 1:
        return str(candidates[0].resource_id), candidates[0].provider
    if candidates:
        listed = ", ".join(
            f"{r.provider}:{r.resource_id} ({'closed' if r.is_closed else 'open'})"
            for r in candidates
        )
        raise ValidationError(
            "id", f"{ref!r} is the name of {len(candidates)} launches",
            allowed=f"one id of: {listed}",
        )
    return ref, provider


def cmd_status(args: argparse.Namespace) -> int:
    with _client() as rc:
        rid, provider = _resolve(rc, args.id, args.provider)
        res = rc.get(rid, provider=provider)
        cost = rc.cost(res)
    if args.json:
        _print_json({"resource": res, "cost": cost})
        return 0
    print(_resource_rows([res]))
    if res.detail:
        print(f"detail: {res.detail}")
    print(f"cost: {_money(cost)}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    _safe_stdout()
    with _client() as rc:
        rid, provider = _resolve(rc, args.id, args.provider)
        for line in rc.logs(rid, follow=args.follow, provider=provider):
            print(line, flush=True)
    return 0


def _simple(op: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _client() as rc:
            rid, provider = _resolve(rc, args.id, args.provider)
            if op == "terminate" and not rc.ledger.locate(rid):
                # Terminate is idempotent, so a provider answers "gone" for an id it never
                # had: without a ledger record, only a resource seen now is terminated.
                # (NotFoundError: an unknown id is an error, not a success.)
                rc.get(rid, provider=provider)
            res = getattr(rc, op)(rid, provider=provider)
        if args.json:
            _print_json(res)
        else:
            print(f"{res.id} {res.state.value}")
        return 0

    return run


# --- parser -------------------------------------------------------------------------------------

def _number(low: float, *, strict: bool, integer: bool = False) -> Callable[[str], Any]:
    """An argparse type: a number above ``low`` (or at least, unless ``strict``)."""
    import math

    bound = f"> {low:g}" if strict else f">= {low:g}"
    kind = "an integer" if integer else "a number"

    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind} (allowed: {bound})") from None
        if not math.isfinite(value) or (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range (allowed: {bound})")
        return value

    return parse


_SECONDS = _number(0, strict=True)
_COUNT = _number(1, strict=False, integer=True)
_SORTS = ["per-hour", "per-gpu-hour", "per-gpu-memory-gb-hour", "per-bf16-pflop-hour"]


def _sort(text: str) -> str:
    # The CLI's spelling and the Python one (per_gpu_hour) both name a view.
    return text.replace("_", "-")


#: The flag a user wrote for each field a ValidationError may name.
_FLAGS = {
    "provider": "--provider", "providers": "--provider", "name": "--name", "env": "--env",
    "image": "--image", "gpu": "--gpu", "gpu_count": "--gpus", "nodes": "--nodes",
    "region": "--region",
    "regions": "--region", "disk_gb": "--disk", "workdir": "--workdir", "tags": "--tag",
    "ttl": "--ttl", "launch_id": "--launch-id", "count": "--count",
    "min_gpu_memory_gb": "--min-gpu-memory", "min_vcpus": "--min-vcpus",
    "min_memory_gb": "--min-memory", "max_per_hour": "--max-per-hour",
    "max_per_gpu_hour": "--max-per-gpu-hour", "sort": "--sort", "limit": "--limit",
    "timeout": "--timeout", "ssh_public_key": "--ssh-public-key",
    "options.ssh_key_name": "--ssh-key", "command": "the command (after --)",
}


def _cli_message(error: Any) -> str:
    """A ValidationError's message, naming the flag the user wrote instead of the field."""
    head, _, rest = error.field.partition(".")
    flag = _FLAGS.get(error.field) or _FLAGS.get(head)
    if flag is None:
        return str(error)
    field = flag if not rest or flag == _FLAGS.get(error.field) else f"{flag} {rest}"
    message = f"{field}: {error.problem}"
    return f"{message} (allowed: {error.allowed})" if error.allowed else message


def _add_launch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", "-p", help="provider name (default: the configured default)")
    p.add_argument("--name", help="a name for the resource")
    p.add_argument("--env", "-e", action="append", metavar="NAME=VALUE", help="env variable")
    p.add_argument("--image", help="container image (container providers)")
    p.add_argument("--gpu", help="GPU model, e.g. H100")
    p.add_argument("--gpus", type=_number(0, strict=False, integer=True), default=0,
                   help="number of GPUs (on each node)")
    p.add_argument("--nodes", type=_COUNT, default=1,
                   help="machines to run the command on (providers with multi_node); "
                   "each gets the rendezvous environment")
    p.add_argument("--region")
    p.add_argument("--spot", action="store_true", help="interruptible capacity")
    p.add_argument("--disk", type=_COUNT, metavar="GB")
    p.add_argument("--workdir", help="the directory the command runs in")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--ttl", type=_number(0, strict=True), metavar="MINUTES",
                   help="terminate after this long (default: default_ttl_hours, 24 h)")
    p.add_argument(
        "--shell", action="store_true",
        help="the command is one shell string, run by sh -c (default: an argv, no shell)",
    )
    p.add_argument("--launch-id", help="idempotency key: one launch per id")
    p.add_argument("--ssh-key", metavar="NAME",
                   help="an SSH key registered with the provider, by name (where one is needed)")
    p.add_argument("--ssh-public-key", metavar="FILE",
                   help="a public key file to install, e.g. ~/.ssh/id_ed25519.pub")
    p.add_argument("--json", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="runctl", description="Launch, watch and tear down training compute on any provider."
    )
    parser.add_argument("--version", action="version", version=f"runctl {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("providers", help="list providers and whether each is usable here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-check", action="store_true", help="metadata only; import nothing")
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser("doctor", help="check the installation, config and every plugin")
    p.add_argument("--json", action="store_true")
    p.add_argument("--online", action="store_true",
                   help="also make one cheap authenticated call per usable provider")
    p.add_argument("--timeout", type=_SECONDS, help="seconds per provider for --online")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("offers", help="machines and prices across providers, cheapest first")
    p.add_argument("--gpu", help="GPU model or family, e.g. H100, A100-80GB")
    p.add_argument("--count", type=_COUNT, help="GPUs per machine")
    p.add_argument("--min-gpu-memory", type=_number(0, strict=True), metavar="GB")
    p.add_argument("--min-vcpus", type=_COUNT)
    p.add_argument("--min-memory", type=_number(0, strict=True), metavar="GB")
    p.add_argument("--max-per-hour", metavar="PRICE")
    p.add_argument("--max-per-gpu-hour", metavar="PRICE")
    spot = p.add_mutually_exclusive_group()
    spot.add_argument("--spot", dest="spot", action="store_const", const=True, default=None)
    spot.add_argument("--on-demand", dest="spot", action="store_const", const=False)
    p.add_argument("--region", action="append", help="region prefix (repeatable)")
    p.add_argument("--provider", "-p", action="append", help="provider (repeatable)")
    p.add_argument("--sort", default="per-hour", type=_sort, choices=_SORTS,
                   help="price view (per_gpu_hour spelling accepted too)")
    p.add_argument("--limit", type=_COUNT, default=20)
    p.add_argument("--timeout", type=_SECONDS, help="seconds per provider")
    p.add_argument("--snapshot-only", action="store_true", help="use the offline price snapshot")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_offers)

    p = sub.add_parser("catalog", help="the offline price snapshot: show it, or refresh it")
    p.add_argument("action", choices=["show", "refresh"])
    p.add_argument("--provider", "-p", action="append", help="refresh only these (repeatable)")
    p.add_argument("--timeout", type=_SECONDS, help="seconds per provider")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("run", help="launch, stream logs, wait, terminate and report the cost")
    _add_launch_args(p)
    p.add_argument("--timeout", type=_SECONDS,
                   help="give up (and terminate) after this many seconds")
    p.add_argument("--start-timeout", type=_SECONDS, default=1800,
                   help="seconds to wait for start")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("launch", help="launch and print the resource id (it runs on, detached)")
    _add_launch_args(p)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("ls", help="list resources runctl launched")
    p.add_argument("--provider", "-p", action="append")
    p.add_argument("--all", "-a", action="store_true", help="include ended resources")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("reconcile", help="bring the ledger in line with what providers report")
    p.add_argument("--provider", "-p", action="append")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser(
        "cleanup", help="terminate runctl resources past their TTL, orphaned or not in the ledger"
    )
    p.add_argument("--dry-run", action="store_true", help="only list them, with their cost")
    p.add_argument("--provider", "-p", action="append")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cleanup)

    for name, help_text in (
        ("status", "show one resource and its cost so far"),
        ("stop", "stop (pause) a resource"),
        ("start", "start a stopped resource"),
        ("terminate", "terminate a resource"),
        ("logs", "print a resource's output"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("id", help="resource id, or the name of a launch in the ledger")
        p.add_argument("--provider", "-p")
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true")
            p.set_defaults(func=cmd_logs)
        else:
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=cmd_status if name == "status" else _simple(name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd in ("run", "launch") and not [c for c in args.command if c != "--"]:
        parser.error(f"{args.cmd}: give the command to run after --, e.g. -- python train.py")
    from ._signals import SignalInterrupt, interrupt_on_signals
    from .errors import RunctlError, ValidationError

    try:
        # SIGTERM/SIGHUP become Ctrl-C: whatever was launched is torn down before exiting.
        with interrupt_on_signals():
            return int(args.func(args))
    except ValidationError as e:
        print(f"runctl: error: {_cli_message(e)}", file=sys.stderr)
        return 1
    except RunctlError as e:
        print(f"runctl: error: {e}", file=sys.stderr)
        return 1
    except SignalInterrupt as e:
        print(f"runctl: {e}; cleaned up", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("runctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
