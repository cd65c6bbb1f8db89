"""The command line: the only part of fetcher that prints, reads `sys.std*`, or imports typer
or tqdm. `app` holds the commands; `runner` the exit statuses and the results loop."""

from __future__ import annotations

from fetcher.cli.app import app, main

__all__ = ["app", "main"]
