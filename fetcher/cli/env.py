"""The streams a command works with, handed to it instead of read from `sys`, so tests can
give it their own."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import BinaryIO, TextIO


@dataclass(frozen=True)
class Environment:
    stdin: BinaryIO
    stdout: BinaryIO
    stderr: TextIO

    @classmethod
    def from_sys(cls) -> Environment:
        return cls(sys.stdin.buffer, sys.stdout.buffer, sys.stderr)

    @property
    def stderr_is_terminal(self) -> bool:
        isatty = getattr(self.stderr, "isatty", None)
        return bool(isatty and isatty())
