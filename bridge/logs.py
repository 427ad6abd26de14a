"""Structured, journald-friendly logging with secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, ClassVar

# Values after these keys never reach a log line, whoever formatted it.
_SECRET = re.compile(
    r"""(?P<key>["']?\b(?:code|pin|pin_code|password|token|secret|network_key)\b["']?\s*[:=]\s*)"""
    r"""(?P<quote>["']?)(?P<value>[^\s"',}]+)(?P=quote)""",
    re.IGNORECASE,
)


# A web pass URL carries its token in the path.
_PASS_PATH = re.compile(r"/p/[A-Za-z0-9_\-%]+")


def redact(text: str) -> str:
    text = _PASS_PATH.sub("/p/***", text)
    return _SECRET.sub(lambda m: f"{m['key']}{m['quote']}***{m['quote']}", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("lock_id", "command", "transaction"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class JournalFormatter(logging.Formatter):
    """`<N>` syslog priority prefixes let journald keep the level without a library."""

    PRIORITY: ClassVar[dict[str, int]] = {
        "DEBUG": 7,
        "INFO": 6,
        "WARNING": 4,
        "ERROR": 3,
        "CRITICAL": 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        text = f"<{self.PRIORITY.get(record.levelname, 6)}>{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + redact(self.formatException(record.exc_info))
        return text


def setup_logging(
    level: str, fmt: str, *, journald: bool = False, library_level: str = "INFO"
) -> None:
    """Log to stderr at `level`; radio libraries no lower than `library_level`."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif journald:
        formatter = JournalFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # zigpy and friends are chatty at DEBUG with raw frames, which may carry PINs.
    noisy_loggers = (
        "zigpy",
        "bellows",
        "zigpy_znp",
        "zigpy_deconz",
        "zigpy_zigate",
        "zigpy_xbee",
        "aiosqlite",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(
            max(logging.getLevelName(library_level), logging.getLevelName(level))
        )
