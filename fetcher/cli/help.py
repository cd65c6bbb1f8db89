"""`--help` pages as users type the commands: arguments shown as `LIST|URL...` and
`MANIFEST`, without typer's braces and Python type names (`{LIST...}...`, `<list[str]>`)."""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand


class PlainCommand(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                _plain(param)


def _plain(argument: TyperArgument) -> None:
    shown = argument.metavar or (argument.name or "").upper()

    def usage() -> str:
        return shown

    def no_type(ctx: Any) -> None:
        return None

    argument._usage_display_name = usage  # type: ignore[method-assign]
    argument.display_type_rich = no_type  # type: ignore[method-assign]
