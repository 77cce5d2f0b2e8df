"""Log lines as JSON, one object per line, for log collectors to index.

Each line has `time` (ISO 8601, UTC), `level`, `logger` and `message`; then what
the context knows (`request_id`, `user`, `dataset`, `version`, and `task` and
`task_id` inside a Celery task); then any `extra=` fields that JSON can hold; and
`exc_info`, the traceback as text, when there is one.

Settings choose this formatter when STRATA_LOG_FORMAT is `json` (the default) and
the plain one when it is `text`. The Celery worker uses the same configuration:
see `configure_worker_logging`.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from ops import context

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12 adds it to every record; it names asyncio tasks
}
# Fields that `extra=` cannot replace: they are what a reader sorts and filters by.
_CORE = frozenset({"time", "level", "logger", "message", "exc_info", "stack_info"})


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        known = context.current()
        for field in context.FIELDS:
            if field in known:
                entry[field] = known[field]
        for key, value in record.__dict__.items():
            # An explicit extra wins over the context (it is the more specific),
            # but never over the core fields. Values JSON cannot hold (a request
            # object Django passes, a socket) are left out rather than guessed at.
            if key in _RECORD_ATTRIBUTES or key in _CORE or key.startswith("_"):
                continue
            if _json_value(value):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_worker_logging(loglevel: int | str | None = None) -> None:
    """Configure a Celery process's logging from the settings' LOGGING, as the web's.

    Connected to Celery's `setup_logging` signal, which stops Celery from putting
    its own handlers and format on the root logger. The level is the more verbose
    of LOG_LEVEL and the worker's --loglevel (Celery passes WARNING when none is
    given), so `--loglevel INFO` keeps working and LOG_LEVEL=DEBUG is honoured.
    """
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    root = logging.getLogger()
    if loglevel:
        level = loglevel if isinstance(loglevel, int) else logging.getLevelName(str(loglevel).upper())
        if isinstance(level, int) and level < root.level:
            root.setLevel(level)
