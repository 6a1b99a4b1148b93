"""Command line: run, check-config, hash-password, simulate, bench, and the operator's
commands (messages, receipts, queues, check-providers: bridge/ops.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import (
    DEFAULT_CONFIG_PATH,
    HTTP_PROVIDER_TYPES,
    Config,
    ConfigError,
    load_config,
    permission_warnings,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own parser: argparse sub-commands cannot pass "--x" through
        from bridge.bench import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="smpp-bridge", description="SMPP v3.4 to HTTP SMS API bridge")
    parser.add_argument("--version", action="version", version=f"smpp-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)

    check = commands.add_parser("check-config", help="validate a config file (exit 2 on problems)")
    check.add_argument("config", type=Path)

    commands.add_parser("hash-password", help="read a password on stdin, print an argon2 hash for password_hash")

    simulate = commands.add_parser("simulate", help="serve a provider's HTTP double")
    simulate.add_argument("provider", choices=HTTP_PROVIDER_TYPES)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8099)

    bench = commands.add_parser("bench", help="SMPP load generator", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)

    from bridge import ops

    ops.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.config)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "hash-password":
        return _hash_password()
    if args.command == "simulate":
        return _simulate(args.provider, args.host, args.port)
    if args.command in ("messages", "receipts", "queues", "check-providers"):
        return ops.run(args)
    from bridge.bench import main as bench_main

    return bench_main(args.bench_args)


def _load(path: Path) -> Config | None:
    """The config, or None after printing one line per problem to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _check_config(path: Path) -> int:
    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    for warning in permission_warnings(path):
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{path}: ok ({len(config.accounts)} accounts, {len(config.providers)} providers, {len(config.routes)} routes)"
    )
    return EXIT_OK


def _hash_password() -> int:
    from bridge.core.auth import hash_password

    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("no password given on stdin", file=sys.stderr)
        return EXIT_FAILURE
    if len(password) > 8:
        print("SMPP passwords are at most 8 characters", file=sys.stderr)
        return EXIT_FAILURE
    print(hash_password(password))
    return EXIT_OK


def _simulate(provider: str, host: str, port: int) -> int:
    from aiohttp import web

    from bridge.simulators import build_simulator

    web.run_app(build_simulator(provider), host=host, port=port, print=lambda *_: None)
    return EXIT_OK


def _run(path: Path) -> int:
    from bridge.logging import configure_logging, get_logger

    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    configure_logging(config.log.level, _log_format(config))
    log = get_logger("cli")
    _log_native(log)
    for warning in permission_warnings(path):
        log.warning("config_permissions", problem=warning)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from bridge.gc_policy import FreezeSurvivors

    FreezeSurvivors().install()  # full collections scan only what is new (bridge/gc_policy.py)
    try:
        asyncio.run(_serve(path, config))
    except Exception:
        log.exception("fatal")
        return EXIT_FAILURE
    return EXIT_OK


def _log_native(log: Any) -> None:
    """One line: the compiled modules in use, or why not (a warning unless the
    operator chose pure Python with SMPP_BRIDGE_PURE)."""
    from bridge import native

    mode = native.MODE
    if mode.compiled:
        log.info("compiled_modules", in_use=True, modules=len(native.COMPILED_SOURCES))
    elif mode.reason.startswith(native.ENV_PURE):
        log.info("compiled_modules", in_use=False, reason=mode.reason)
    else:
        log.warning("compiled_modules", in_use=False, reason=mode.reason)


def _log_format(config: Config) -> str:
    """An unset `[log] format` means "auto" (console on a terminal, JSON otherwise);
    SMPP_BRIDGE_LOG_FORMAT overrides the file."""
    fmt: str = config.log.format
    if os.environ.get("SMPP_BRIDGE_LOG_FORMAT") in ("auto", "json", "console"):
        fmt = os.environ["SMPP_BRIDGE_LOG_FORMAT"]
    return fmt


async def _serve(path: Path, config: object) -> None:
    from bridge.app import Bridge
    from bridge.config import Config
    from bridge.logging import configure_logging, get_logger
    from bridge.notify import Notifier

    assert isinstance(config, Config)
    log = get_logger("cli")
    bridge = Bridge(config, path)
    notifier = Notifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    serving = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        """SIGHUP: the new file replaces the old one, or is rejected and changes nothing.
        A SIGHUP during start-up waits for it; one during shutdown is ignored."""
        await serving.wait()
        if stop.is_set():
            return
        notifier.reloading()
        try:
            new = load_config(path)
            await bridge.reload(new)
        except ConfigError as exc:
            bridge.metrics.config_reloads.labels("rejected").inc()
            log.error("reload_rejected", config=str(path), problems=exc.problems)
            notifier.reloaded("serving; last reload rejected")
            return
        except Exception:
            bridge.metrics.config_reloads.labels("rejected").inc()
            log.exception("reload_failed", config=str(path))
            notifier.reloaded("serving; last reload failed")
            return
        bridge.metrics.config_reloads.labels("ok").inc()
        configure_logging(new.log.level, _log_format(new))
        notifier.reloaded("serving")

    def on_sighup() -> None:
        task = asyncio.ensure_future(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await bridge.start()
    serving.set()
    notifier.ready(f"serving SMPP on port {bridge.ports.get('smpp')}")
    await stop.wait()
    notifier.stopping()
    try:
        await asyncio.gather(*reloads, return_exceptions=True)  # a reload under way finishes first
        await bridge.stop()
    finally:
        notifier.stop_watchdog()
