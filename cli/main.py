"""``herald``'s entry point: the argument parser, and running the chosen command with the settings."""

from __future__ import annotations

import argparse
import sys

from cli.admin import cmd_apikey_create, cmd_apikey_list, cmd_apikey_revoke, cmd_migrate, cmd_token
from cli.common import CliError
from cli.serve import cmd_up, cmd_web, cmd_worker
from config import Settings, SettingsError, configure_logging
from hub.preflight import StartupError
from store import apikeys


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        raise SystemExit(2)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        args.run(settings, args)
    except (SettingsError, CliError, StartupError) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description="Herald: realtime messaging and push notification hub.")
    parser.add_argument("--version", action="version", version=f"herald {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    up = sub.add_parser("up", help="run web and worker together; embedded PostgreSQL and Redis when no URLs are set")
    up.set_defaults(run=cmd_up)
    web_cmd = sub.add_parser("web", help="run a web node (Socket.IO, REST, health) on PORT")
    web_cmd.set_defaults(run=cmd_web)
    worker = sub.add_parser("worker", help="run an arq worker for push and campaign jobs")
    worker.set_defaults(run=cmd_worker)
    mig = sub.add_parser("migrate", help="apply pending SQL migrations (safe to run from several processes)")
    mig.set_defaults(run=cmd_migrate)

    token = sub.add_parser("token", help="mint a client JWT with the configured secret, for trying things")
    token.add_argument("user_id", help="the user the token is for (its sub)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.set_defaults(run=cmd_token)

    keys = sub.add_parser("apikey", help="create, list and revoke API keys")
    key_sub = keys.add_subparsers(title="apikey commands", metavar="ACTION", required=True)
    create = key_sub.add_parser("create", help="create a key; it is shown once")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--scopes", required=True, help=f"comma-separated scopes from: {', '.join(apikeys.SCOPES)}")
    create.set_defaults(run=cmd_apikey_create)
    listing = key_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(run=cmd_apikey_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key", help="the key's id or prefix, as `herald apikey list` shows")
    revoke.set_defaults(run=cmd_apikey_revoke)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("herald-hub")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
        return "unknown"
