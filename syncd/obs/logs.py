"""Logging: structlog, one JSON object per line on stdout.

Event names are snake_case; context (sku, channel, topic, partition, offset)
is bound as fields, never formatted into the message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}
"""Level names and structlog method names -> logging's numbers."""

_threshold = logging.INFO


def set_level(level: str) -> None:
    """Change the level of every logger at once (SIGHUP reloads ``[log] level``)."""
    global _threshold
    _threshold = _LEVELS[level]


def _drop_below_level(_logger: Any, method: str, event: Any) -> Any:
    """First in the chain: structlog fixes a logger's level filter at its first use, so
    the loggers pass every level and this drops what is below the current one."""
    if _LEVELS.get(method, logging.CRITICAL) < _threshold:
        raise structlog.DropEvent
    return event


def configure(level: str = "info") -> None:
    set_level(level)
    structlog.configure(
        processors=[
            _drop_below_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # aiokafka logs through the standard library; keep its warnings, as JSON-ish lines on stderr.
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format='{"level":"%(levelname)s","logger":"%(name)s","event":"%(message)s"}',
    )
