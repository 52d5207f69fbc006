"""What every `switchboard` command shares: the --config option, exit 2 with a message, the checked config."""
from __future__ import annotations

import sys
from typing import Any

import click

CONFIG_HELP = "the YAML configuration (default: $SWITCHBOARD_CONFIG)"


def config_option(func: Any) -> Any:
    return click.option("--config", "config_path", envvar="SWITCHBOARD_CONFIG", type=click.Path(dir_okay=False),
                        help=CONFIG_HELP)(func)


def fail(message: str, code: int = 2) -> None:
    click.echo(message.rstrip("\n"), err=True)
    sys.exit(code)


def load(config_path: str | None) -> Any:
    """Load and validate the configuration, or exit 2 listing every problem."""
    from controller.config.errors import ConfigError
    from controller.config.load import load_config
    if not config_path:
        fail("no configuration given: pass --config CONFIG or set SWITCHBOARD_CONFIG")
    try:
        return load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
