"""Command-line interface: one click group, thin commands.

Each command resolves paths, calls one library function and prints one summary line. Heavy imports
(torch, matplotlib, pandas) happen inside the command bodies so that ``--help`` is instant.
Library exceptions become one-line errors here and only here; ``-v`` shows the traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from echotemporal import __version__
from echotemporal.errors import EchoTemporalError


def _friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and common OS errors) into one-line ClickExceptions."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        verbose = bool(ctx.find_root().params.get("verbose"))
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (EchoTemporalError, OSError, ValueError) as exc:
            if verbose:
                raise
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="echotemporal")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks on errors.")
def main(verbose: bool) -> None:
    """Make segmented echocardiography sequences temporally and anatomically consistent."""


# ---- commands are added below, one block each, in the order of DESIGN.md §8 ----


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
