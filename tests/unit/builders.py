"""Small builders shared by the unit tests of the engine's modules: sources, complete temp
files and results, made the way the engine makes them."""

from __future__ import annotations

from pathlib import Path

from fetcher.results import ErrorInfo, ErrorType, Result, Status
from fetcher.sources import Source, parse_source
from fetcher.temps import LiveTemps, TempOutput, temp_name


def url_source(index: int, name: str = "a.txt", host: str = "example.org") -> Source:
    """An HTTP source; the list's folder does not matter for URLs."""
    return parse_source(f"https://{host}/{name}", index, Path("/lists"))


def complete_temp(root: Path, source: Source, body: bytes, live: LiveTemps) -> TempOutput:
    """A closed temp file holding `body`, where a worker would have written it."""
    temp = TempOutput(root / temp_name(source.index, source.target), live)
    temp.write(body)
    temp.close()
    return temp


def ok_row(index: int, extra: dict[str, object] | None = None) -> Result:
    return Result(
        index=index,
        source=f"https://example.org/{index}",
        path=f"{index}.bin",
        status=Status.OK,
        bytes=3,
        sha256="0" * 64,
        http_status=200,
        attempts=1,
        elapsed_s=0.5,
        extra=extra or {},
    )


def failed_row(index: int, kind: ErrorType = ErrorType.HTTP_STATUS) -> Result:
    return Result(
        index=index,
        source=f"https://example.org/{index}",
        path=None,
        status=Status.FAILED,
        http_status=500,
        attempts=3,
        error=ErrorInfo(kind, "HTTP 500 (after 3 attempts)"),
    )
