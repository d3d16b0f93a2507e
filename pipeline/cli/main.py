"""The ``countersign`` group: the data folder option, and errors turned into one line on
stderr and an exit code. The commands live by area beside this module.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input (named on stderr, one
line per problem, never a traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli import audit, documents, generate, service, setup
from pipeline.cli.common import fail
from pipeline.config import configure_logging, debug_enabled, load_settings
from pipeline.errors import KNOWN_ERRORS, BadInput, ValidationFailed, as_pipeline_error


class CountersignGroup(click.Group):
    """Turns every CountersignError into its message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KNOWN_ERRORS as exc:
            error = as_pipeline_error(exc)
            if isinstance(error, ValidationFailed):
                for problem in error.problems:
                    click.echo(str(problem), err=True)
            fail(str(error), 2 if isinstance(error, BadInput) else 1)
        except KeyboardInterrupt:
            fail("已中断 / interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must still not print a traceback
            if debug_enabled():
                raise
            fail(f"内部错误 / internal error: {type(exc).__name__}: {exc} "
                 "(set COUNTERSIGN_DEBUG=1 for details)", 1)


@click.group(cls=CountersignGroup)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data folder (default: $COUNTERSIGN_DATA or ./data).")
@click.option("--verbose", is_flag=True, help="Also log what the libraries report (pyHanko…).")
@click.version_option(package_name="countersign")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """Countersign: formal documents from templates, signed by every party in turn."""
    # pyHanko logs every certificate it cannot trust and every revision it rejects with a
    # traceback; the verdicts printed here already name those problems, and stderr is kept
    # for one line per error (the libraries' logs come back with --verbose).
    configure_logging(verbose or debug_enabled())
    ctx.obj = load_settings(data_dir)


for _area in (setup, generate, documents, audit, service):
    for _command in _area.COMMANDS:
        main.add_command(_command)
