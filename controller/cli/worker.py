"""`switchboard worker`: the after-call worker as its own process (the `switchboard-worker` systemd unit).

Runs until SIGTERM/SIGINT (the record in hand is finished, the rest stays queued for the next worker); SIGHUP
reads the configuration again for the records that come next (agents' after-call actions, classifications,
smtp), a file that does not validate changing nothing. Under systemd it says READY once it holds its consumer
group, RELOADING/READY around a reload, STOPPING at the stop, and pings the watchdog while Redis answers.
`--drain` processes what the queue holds and exits instead.
"""
from __future__ import annotations

import logging
import signal
from typing import Any

import click
import gevent
import gevent.event
import gevent.lock

from controller.aftercall.worker import Worker, after_call_settings, build_worker
from controller.clock import Clock
from controller.ops.systemd import Notifier
from controller.state.store import Store

log = logging.getLogger("switchboard.worker")


def drain_queue(config: Any) -> int:
    """`worker --drain`: 0 when everything was delivered, 1 otherwise (what is left is printed)."""
    from controller.aftercall.drain import drain
    store = Store.open(config, Clock(config.server.time_scale))
    try:
        report = drain(build_worker(config, store, store.clock))
    finally:
        store.close()
    later = f", the next retry in {report.next_retry_s:.0f} s" if report.next_retry_s is not None else ""
    click.echo(f"drained: {report.finished} delivered, {report.dead} to the dead letters (switchboard jobs "
               f"list), {report.waiting} waiting for a retry{later}, {report.elsewhere} held by other workers")
    return 0 if report.clean else 1


def _reload(worker: Worker, path: Any) -> None:
    """The configuration file again, for the records read from now on; the old one stays when it is refused."""
    from controller.config.errors import ConfigError
    from controller.config.load import load_config
    try:
        config = gevent.get_hub().threadpool.apply(load_config, (path,))
    except ConfigError as exc:
        log.error("reload refused, the worker keeps its configuration: %s:\n%s", path, exc)
        return
    except Exception:  # an unreadable file or a bug: same outcome, with the traceback in the log
        log.exception("reload refused, the worker keeps its configuration: %s", path)
        return
    worker.configure(*after_call_settings(config))
    log.info("configuration reloaded from %s: the after-call actions of the next records use it", path)


def run_worker(config: Any) -> int:
    """Consume the after-call stream until told to stop; 0 after a requested stop."""
    clock = Clock(config.server.time_scale)
    store = Store.open(config, clock)
    systemd, stop, reloading = Notifier(), gevent.event.Event(), gevent.lock.Semaphore()
    try:
        worker = build_worker(config, store, clock)
        run = gevent.spawn(worker.run, stop)

        def stopping() -> None:
            stop.set()
            systemd.stopping("finishing the record in hand; the rest stays queued")

        def reload() -> None:
            with reloading:
                systemd.reloading()
                _reload(worker, config.path)
                systemd.ready(f"consuming {store.stream_key} as {worker.consumer}")

        def announce() -> None:
            worker.ready.wait()
            systemd.ready(f"consuming {store.stream_key} as {worker.consumer}")

        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, lambda: gevent.spawn(stopping))
        gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(reload))
        helpers = [gevent.spawn(announce)]
        watchdog = systemd.watch(lambda: _health(run), stop)
        helpers += [watchdog] if watchdog is not None else []
        run.get()  # a crash of the loop itself (it survives Redis outages and failed rounds) ends the process
        gevent.killall(helpers)
    finally:
        store.close()
        systemd.close()
    return 0


def _health(run: gevent.Greenlet) -> tuple[bool, dict[str, Any]]:
    """The loop runs (it waits out a Redis outage by itself: a restart would not bring Redis back)."""
    parts = {"worker": not run.dead}
    return all(parts.values()), parts
