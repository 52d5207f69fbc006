"""What every `switchboard` command shares: the --config option, loading it, failing with exit 2, the store.

Bad input prints what is wrong and how to fix it, and exits 2; nothing lets a traceback reach the operator.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn

import click

CONFIG_HELP = "the YAML configuration (default: $SWITCHBOARD_CONFIG)"


def config_option(func: Any) -> Any:
    return click.option("--config", "config_path", envvar="SWITCHBOARD_CONFIG", type=click.Path(dir_okay=False),
                        help=CONFIG_HELP)(func)


def fail(message: str, code: int = 2) -> NoReturn:
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


@contextmanager
def open_store(config_path: str | None) -> Iterator[Any]:
    """The configured Redis (the embedded one is started if nobody runs it), or exit 2 saying why not."""
    import redis

    from controller.state.embedded_redis import EmbeddedRedisError
    from controller.state.store import Store
    config = load(config_path)
    try:
        store = Store(config.redis, config.server.state_dir).start(maintain=False)
    except (EmbeddedRedisError, redis.RedisError, OSError, ValueError) as exc:
        fail(f"cannot reach redis: {exc}")
    try:
        yield store
    except redis.RedisError as exc:
        fail(f"redis ({store.url or store.embedded.url}): {exc}")
    finally:
        store.close()
