"""The ``runctl`` command: a thin layer over :class:`runctl.Client`.

Every listing command takes ``--json`` for output other tools can read.
Exit codes: 0 success; 1 a runctl error (message on stderr); 2 bad usage;
``runctl run`` exits with the workload's own exit code; 130 after Ctrl-C.
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
    from .registry import providers

    infos = providers(check=not args.no_check)
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .registry import providers

    settings = load_settings()
    infos = providers(check=True)
    report = {
        "home": str(settings.home),
        "config_file": str(settings.home / "config.toml"),
        "config_file_exists": (settings.home / "config.toml").exists(),
        "default_provider": settings.default_provider,
        "python": sys.version.split()[0],
        "providers": [
            {"name": i.name, "ok": i.ok, "usable": i.usable, "reason": i.reason, "error": i.error}
            for i in infos
        ],
    }
    broken = [i for i in infos if i.error]
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if broken else 0
    from ._version import __version__

    print(f"runctl {__version__} on Python {report['python']}")
    found = "found" if report["config_file_exists"] else "absent"
    print(f"home: {report['home']} (config file {found})")
    print(f"default provider: {settings.default_provider}")
    for info in infos:
        if info.error:
            print(f"  [broken]  {info.name}: {info.error}")
        elif info.usable:
            print(f"  [ok]      {info.name}: {info.reason or 'usable'}")
        else:
            print(f"  [no]      {info.name}: {info.reason or 'not usable here'}")
    return 1 if broken else 0


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
        sort=args.sort.replace("-", "_"),
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


def _spec_from(args: argparse.Namespace) -> Any:
    from .models import LaunchSpec

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    env = {}
    for item in args.env or ():
        key, sep, value = item.partition("=")
        if not sep:
            from .errors import ValidationError

            raise ValidationError("--env", f"{item!r} has no '='", allowed="NAME=VALUE")
        env[key] = value
    tags = {}
    for item in args.tag or ():
        key, _, value = item.partition("=")
        tags[key] = value
    return LaunchSpec(
        command=command,
        provider=args.provider,
        name=args.name,
        env=env,
        image=args.image,
        gpu=args.gpu,
        gpu_count=args.gpus,
        region=args.region,
        spot=args.spot,
        disk_gb=args.disk,
        workdir=args.workdir,
        tags=tags,
        ttl=timedelta(minutes=args.ttl) if args.ttl else None,
        **({"launch_id": args.launch_id} if args.launch_id else {}),
    )


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
    from . import clock
    from .errors import WaitTimeoutError

    spec = _spec_from(args)
    with _client() as rc:
        name = spec.provider or rc.settings.default_provider
        caps = rc.provider(name).capabilities
        if not caps.exit_code and args.timeout is None:
            # Checked before launching: without it the run would bill until someone noticed.
            from .errors import ValidationError

            raise ValidationError(
                "--timeout",
                f"{name} cannot tell when the command ends, so `runctl run` would never "
                "finish; give --timeout SECONDS to tear the machine down then",
                allowed="a number of seconds; or use `runctl launch` and `runctl terminate`",
            )
        launch = rc.launch(spec)
        with launch as res:
            print(f"runctl: launched {res.id} on {res.provider}", file=sys.stderr)
            rc.wait(res, until="running", timeout=args.start_timeout)
            deadline = None if args.timeout is None else clock.monotonic() + args.timeout
            if caps.follow_logs:
                for line in rc.logs(res, follow=True, timeout=args.timeout):
                    print(line, flush=True)
            left = None if deadline is None else max(0.0, deadline - clock.monotonic())
            try:
                done = rc.wait(res, until="finished", timeout=left)
            except WaitTimeoutError as e:
                done = e.resource
                print(f"runctl: --timeout {args.timeout:g} s reached; terminating", file=sys.stderr)
            if caps.logs and not caps.follow_logs:
                # Logs that cannot be followed are read once, before the machine goes.
                for line in rc.logs(res):
                    print(line, flush=True)
        final = launch.resource  # as observed after teardown
        cost = rc.cost(final)
    took = ""
    if final.started_at and final.ended_at:
        took = f" in {(final.ended_at - final.started_at).total_seconds():.1f} s"
    code = "" if final.exit_code is None else f", exit code {final.exit_code}"
    now = "" if final.state is done.state else f"; now {final.state.value}"
    print(
        f"runctl: {final.id} {done.state.value}{code}{took}{now}; cost {_money(cost)}",
        file=sys.stderr,
    )
    if args.json:
        _print_json({"resource": final, "cost": cost})
    if done.exit_code is not None:
        return done.exit_code
    if not done.is_terminal:
        return 124  # ended by --timeout, like timeout(1)
    return 0 if done.state.value == "succeeded" else 1


def cmd_ls(args: argparse.Namespace) -> int:
    with _client() as rc:
        found = rc.list(providers=args.provider or None)
    if not args.all:
        found = [r for r in found if not r.is_terminal]
    if args.json:
        _print_json(found)
    else:
        print(_resource_rows(found))
    return 0


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
        print(f"error: {name}: {error}", file=sys.stderr)
    return 0 if report.ok else 1


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
        print(f"error: {name}: {error}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    with _client() as rc:
        res = rc.get(args.id, provider=args.provider)
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
    with _client() as rc:
        for line in rc.logs(args.id, follow=args.follow, provider=args.provider):
            print(line, flush=True)
    return 0


def _simple(op: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _client() as rc:
            res = getattr(rc, op)(args.id, provider=args.provider)
        if args.json:
            _print_json(res)
        else:
            print(f"{res.id} {res.state.value}")
        return 0

    return run


# --- parser -------------------------------------------------------------------------------------


def _add_launch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", "-p", help="provider name (default: the configured default)")
    p.add_argument("--name", help="a name for the resource")
    p.add_argument("--env", "-e", action="append", metavar="NAME=VALUE", help="env variable")
    p.add_argument("--image", help="container image (container providers)")
    p.add_argument("--gpu", help="GPU model, e.g. H100")
    p.add_argument("--gpus", type=int, default=0, help="number of GPUs")
    p.add_argument("--region")
    p.add_argument("--spot", action="store_true", help="interruptible capacity")
    p.add_argument("--disk", type=int, metavar="GB")
    p.add_argument("--workdir", help="working directory (local provider)")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--ttl", type=float, metavar="MINUTES", help="terminate after this long")
    p.add_argument("--launch-id", help="idempotency key: one launch per id")
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
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("offers", help="machines and prices across providers, cheapest first")
    p.add_argument("--gpu", help="GPU model or family, e.g. H100, A100-80GB")
    p.add_argument("--count", type=int, help="GPUs per machine")
    p.add_argument("--min-gpu-memory", type=float, metavar="GB")
    p.add_argument("--min-vcpus", type=int)
    p.add_argument("--min-memory", type=float, metavar="GB")
    p.add_argument("--max-per-hour", metavar="PRICE")
    p.add_argument("--max-per-gpu-hour", metavar="PRICE")
    spot = p.add_mutually_exclusive_group()
    spot.add_argument("--spot", dest="spot", action="store_const", const=True, default=None)
    spot.add_argument("--on-demand", dest="spot", action="store_const", const=False)
    p.add_argument("--region", action="append", help="region prefix (repeatable)")
    p.add_argument("--provider", "-p", action="append", help="provider (repeatable)")
    p.add_argument(
        "--sort",
        default="per-hour",
        choices=["per-hour", "per-gpu-hour", "per-gpu-memory-gb-hour", "per-bf16-pflop-hour"],
    )
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--timeout", type=float, help="seconds per provider")
    p.add_argument("--snapshot-only", action="store_true", help="use the offline price snapshot")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_offers)

    p = sub.add_parser("catalog", help="the offline price snapshot: show it, or refresh it")
    p.add_argument("action", choices=["show", "refresh"])
    p.add_argument("--provider", "-p", action="append", help="refresh only these (repeatable)")
    p.add_argument("--timeout", type=float, help="seconds per provider")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("run", help="launch, stream logs, wait, terminate and report the cost")
    _add_launch_args(p)
    p.add_argument("--timeout", type=float, help="give up (and terminate) after this many seconds")
    p.add_argument("--start-timeout", type=float, default=1800, help="seconds to wait for start")
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
        p.add_argument("id", help="resource id")
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
    from .errors import RunctlError

    try:
        return int(args.func(args))
    except RunctlError as e:
        print(f"runctl: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("runctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
