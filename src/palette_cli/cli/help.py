"""Help pages as users of image tools expect them: flags without a type beside them, named arguments
without one either, value ranges said in words in the option's help rather than as ``[0<=x<=…]``.

Typer shows a type for every parameter (``--overwrite <bool>``, ``--help <bool>``, ``inputs <list[str]>``),
which reads as if flags took a value: users typed ``--overwrite true``. :class:`PaletteCommand` drops the
type of flags and of parameters that name their value (a metavar); every command of the app uses it, and
every group :class:`PaletteGroup`.
"""

from __future__ import annotations

from typing import Any, Callable

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup


class _NamedArgument(TyperArgument):
    """An argument whose metavar says what it takes (``IMAGES``): no type is shown beside it."""

    def display_type_rich(self, ctx: Any) -> None:
        return None


def _tidy(param: Any) -> None:
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""  # a flag takes no value: show none
    if type(param) is TyperArgument and param.metavar:
        param.__class__ = _NamedArgument


class PaletteCommand(TyperCommand):
    """A Typer command whose help shows no type for flags and named arguments (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _tidy(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            _tidy(option)
        return option


class PaletteGroup(TyperGroup):
    """A Typer group (the app, ``palette data``, ``palette study``) whose ``--help`` shows no type."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            _tidy(option)
        return option


def command(app: typer.Typer, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.command(name)`` with :class:`PaletteCommand`: how every command of the app is registered."""
    return app.command(name, cls=PaletteCommand)


def in_range(low: float, high: float | None = None) -> Callable[[Any], Any]:
    """An option callback refusing values outside ``low``..``high`` (None: no upper bound), with the
    range in the error; the help says the range in words instead of Typer's ``[low<=x<=high]``."""
    def check(value: Any) -> Any:
        if value is None:
            return value
        if value != value or value < low or (high is not None and value > high):  # NaN is in no range
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise typer.BadParameter(f"{value} is not {bound}")
        return value

    return check
