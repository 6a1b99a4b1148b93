"""structlog setup: JSON lines (default, for systemd and Docker) or console text.

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


def configure_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog (and the stdlib loggers of aiohttp & co.) to one stream."""
    stream = stream or sys.stderr
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
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
