"""structlog setup: JSON lines (for systemd, Docker, log shippers) or console text.

Format "auto" (what an unset `[log] format` means) picks console text when stderr is
a terminal and JSON lines otherwise, so the same config reads well by hand and
parses well under systemd or Docker; "json" and "console" force one of the two.

Context such as system_id, session, sequence and message_id is bound with
`structlog.contextvars` or `log.bind(...)`. Message text and full phone numbers are
personal data: log them only at debug level, and only through `mask_number`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def resolve_format(fmt: str, stream: Any) -> str:
    """The format "auto" stands for: console text on a terminal, JSON lines otherwise."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Route structlog (and the stdlib loggers of aiohttp & co.) to one stream."""
    stream = stream or sys.stderr
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if resolve_format(fmt, stream) == "console"
        else structlog.processors.JSONRenderer()
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Records of the stdlib loggers (aiohttp, asyncio) get the same renderer: one
    # JSON object per line, whatever logged it.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
                structlog.processors.format_exc_info,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(_LEVELS[level], logging.INFO))  # library chatter stays out of debug


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def mask_number(number: str) -> str:
    """`+52*******234`: enough to tell numbers apart in a debug log, not to dial."""
    if len(number) <= 4:
        return "*" * len(number)
    keep = 3 if len(number) > 8 else 1
    return number[:keep] + "*" * (len(number) - keep - 3) + number[-3:]
