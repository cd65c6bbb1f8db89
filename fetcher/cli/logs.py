"""Log lines on stderr: the library's decisions per item (retries, back-offs, resumes,
slow-downs, conditional GETs) under -v, only errors under -q. Written above the progress
bar when one is shown, so neither breaks the other."""

from __future__ import annotations

import logging
from typing import TextIO

from fetcher.cli.progress import ProgressBar

LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


class StderrHandler(logging.Handler):
    """Writes to the command's stderr, through the bar while there is one."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.bar: ProgressBar | None = None
        self.setFormatter(logging.Formatter("fetcher: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            bar = self.bar
            if bar is not None:
                bar.write(line)
            else:
                self._stream.write(line + "\n")
                self._stream.flush()
        except Exception:
            self.handleError(record)


def install(stream: TextIO, verbosity: int) -> StderrHandler:
    """Route the `fetcher` loggers to `stream` at the level -v/-q ask for."""
    handler = StderrHandler(stream)
    logger = logging.getLogger("fetcher")
    logger.handlers[:] = [handler]
    logger.setLevel(LEVELS[max(-1, min(verbosity, 2))])
    logger.propagate = False
    return handler


def show_above(bar: ProgressBar | None) -> None:
    """Write log lines above `bar` from now on (None: straight to the stream again)."""
    for handler in logging.getLogger("fetcher").handlers:
        if isinstance(handler, StderrHandler):
            handler.bar = bar
