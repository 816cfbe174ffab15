"""Logging: structlog, one JSON object per line on stdout.

Event names are snake_case; context (sku, channel, topic, partition, offset)
is bound as fields, never formatted into the message.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # aiokafka logs through the standard library; keep its warnings, as JSON-ish lines on stderr.
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format='{"level":"%(levelname)s","logger":"%(name)s","event":"%(message)s"}',
    )
