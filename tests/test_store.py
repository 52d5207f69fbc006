"""Store: call state, counters, the after-call stream, the spool, and the embedded Redis surviving kills."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from controller.clock import Clock
from controller.state.embedded_redis import EmbeddedRedis, _pid_alive
from controller.state.spool import Spool
from controller.state.connection import StoreSettings, connect
from controller.state.store import Store


def _kill(pid: int) -> None:
    """SIGKILL, then wait until every thread is gone (a zombie leader may still have bio threads running)."""
    os.kill(pid, signal.SIGKILL)
    for _ in range(500):
        if not _pid_alive(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} still running 5 s after SIGKILL")


def _records(store: Store) -> list[dict]:
    return [json.loads(fields[b"record"]) for _, fields in store.redis.xrange(store.stream_key)]


def test_a_call_state_is_kept_as_json_and_expires_with_the_call_ttl(store: Store) -> None:
    store.call_started("u-1", "sales", "+33612345678", {"customer": {"name": "Zoé", "tier": 2}})
    store.update_call("u-1", state="answered", answered_at="2026-01-05T10:00:00+00:00")
    store.append_transcript("u-1", {"role": "caller", "text": "I want to talk to sales"})
    store.append_transcript("u-1", {"role": "agent", "text": "Let me transfer you"})
    store.append_action("u-1", {"name": "to_sales", "type": "transfer", "ok": True})
    assert store.incr_call("u-1", "silences") == 1
    assert store.incr_call("u-1", "silences") == 2

    state = store.call_state("u-1")

    assert state["agent"] == "sales" and state["caller"] == "+33612345678" and state["state"] == "answered"
    assert state["variables"] == {"customer": {"name": "Zoé", "tier": 2}}
    assert state["count:silences"] == 2
    assert [t["text"] for t in state["transcript"]] == ["I want to talk to sales", "Let me transfer you"]
    assert state["actions"] == [{"name": "to_sales", "type": "transfer", "ok": True}]
    for key in ("t:call:u-1", "t:call:u-1:transcript", "t:call:u-1:actions"):
        assert 0 < store.redis.ttl(key) <= 600
    store.redis.delete("t:call:u-1", "t:call:u-1:transcript", "t:call:u-1:actions")
    assert store.call_state("u-1") == {}


def test_global_counters_add_up_across_calls(store: Store) -> None:
    store.incr("calls:refused")
    store.incr("action:sales.to_desk:no_answer", uuid="u-1")
    store.incr("action:sales.to_desk:no_answer", by=2, uuid="u-2")

    assert store.counters() == {"calls:refused": 1, "action:sales.to_desk:no_answer": 3}


def test_a_record_appended_goes_to_the_stream_with_a_record_id(store: Store) -> None:
    entry_id = store.append_record({"uuid": "u-1", "agent": "sales", "transcript": []})

    assert entry_id and "-" in entry_id
    (record,) = _records(store)
    assert record["uuid"] == "u-1" and len(record["record_id"]) == 32


def test_live_call_methods_carry_on_and_log_once_per_call_when_redis_is_down(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    _kill(store.embedded.pid)
    caplog.set_level(logging.WARNING)

    for _ in range(2):
        store.call_started("u-1", "sales", "+33612345678", {})
        store.append_transcript("u-1", {"role": "caller", "text": "hello"})
        store.update_call("u-1", state="answered")
        assert store.incr("calls:refused", uuid="u-1") is None
        assert store.call_state("u-1") == {}
        store.append_transcript("u-2", {"role": "caller", "text": "hello"})
        time.sleep(0.05)

    per_call = [r for r in caplog.records if r.name == "switchboard.store" and getattr(r, "uuid", None)]
    assert sorted(r.uuid for r in per_call) == ["u-1", "u-2"]
    assert len([r for r in caplog.records if "redis unavailable (" in r.getMessage()]) == 1


def _wait_for_aof(state_dir: Path, text: bytes) -> None:
    aof = state_dir / "redis" / "appendonly.aof"
    for _ in range(300):
        if text in aof.read_bytes():
            return
        time.sleep(0.01)
    raise AssertionError(f"{text!r} never reached {aof}")


def test_records_spooled_while_redis_is_down_reach_the_stream_in_order_when_it_returns(
        store: Store, state_dir: Path) -> None:
    store.append_record({"uuid": "u-0"})
    _wait_for_aof(state_dir, b"u-0")
    _kill(store.embedded.pid)

    spooled = [store.append_record({"uuid": f"u-{n}"}) for n in range(1, 4)]

    assert spooled == [None, None, None]
    assert [json.loads(p.read_text())["uuid"] for p in store.spool.pending()] == ["u-0", "u-1", "u-2", "u-3"]
    assert store.restart_embedded_if_dead()
    assert store.sync_spool() == 3  # u-0 was in the AOF: found by its marker, not added twice
    assert store.spool.pending() == []  # confirm_after_s=0 in the fixture
    assert [r["uuid"] for r in _records(store)] == ["u-0", "u-1", "u-2", "u-3"]


def test_a_record_appended_while_the_spool_is_not_empty_waits_its_turn(store: Store) -> None:
    _kill(store.embedded.pid)
    store.append_record({"uuid": "u-1"})
    store.restart_embedded_if_dead()

    assert store.append_record({"uuid": "u-2"}) is not None

    assert [r["uuid"] for r in _records(store)] == ["u-1", "u-2"]
    assert store.sync_spool() == 0 and store.spool.pending() == []


def test_a_spool_that_cannot_be_written_leaves_the_record_to_redis_and_says_so(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.spool.directory.rmdir()
    store.spool.directory.write_text("a file where the spool directory should be")

    assert store.append_record({"uuid": "u-1"}) is not None
    assert [r["uuid"] for r in _records(store)] == ["u-1"]
    _kill(store.embedded.pid)
    assert store.append_record({"uuid": "u-2"}) is None

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [getattr(r, "uuid", None) for r in errors] == ["u-1", "u-2", "u-2"]
    assert "goes to redis alone" in errors[0].getMessage()
    assert "call record LOST" in errors[2].getMessage() and '"uuid":"u-2"' in errors[2].getMessage()


def test_spool_names_keep_their_order_when_the_wall_clock_goes_back(state_dir: Path) -> None:
    spool = Spool(state_dir / "spool")
    for n, now_us in enumerate([2_000_000, 1_000_000, 1_000_000, 3_000_000]):
        spool.write(json.dumps({"n": n}), now_us)
    (state_dir / "spool" / ".00000000000000001-000000.json.tmp").write_text("{half")

    reopened = Spool(state_dir / "spool")

    assert [json.loads(p.read_text())["n"] for p in reopened.pending()] == [0, 1, 2, 3]
    assert not list((state_dir / "spool").glob(".*.tmp"))
    reopened.write("{}", 0)
    assert json.loads(reopened.pending()[-1].read_text()) == {}


@pytest.fixture
def make_store(state_dir: Path, redis_settings: StoreSettings, monkeypatch: pytest.MonkeyPatch):
    """Stores sharing the state dir (as `serve` and `worker` do), each with its confirm_after_s; closed after."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    made: list[Store] = []

    def make(confirm_after_s: float) -> Store:
        made.append(Store(redis_settings, state_dir, Clock(), confirm_after_s=confirm_after_s).start(maintain=False))
        return made[-1]

    yield make
    for store in reversed(made):
        store.close()


def test_a_record_stays_on_disk_until_redis_has_held_it_past_its_aof_write_delay(make_store) -> None:
    store = make_store(0.5)
    store.sync_spool()
    store.append_record({"uuid": "u-1"})
    (path,) = store.spool.pending()
    assert store.sync_spool() == 0 and path.exists()  # held for less than confirm_after_s

    time.sleep(0.6)

    assert store.sync_spool() == 0 and not path.exists()
    assert [r["uuid"] for r in _records(store)] == ["u-1"]


def test_a_record_whose_aof_write_redis_never_made_comes_back_from_the_spool_after_a_sigkill(
        make_store, state_dir: Path) -> None:
    """Redis replies before writing its AOF while a background fsync runs (everysec); cut the AOF as it was."""
    store = make_store(60)
    aof = state_dir / "redis" / "appendonly.aof"
    store.sync_spool()
    store.append_record({"uuid": "u-written"})
    _wait_for_aof(state_dir, b"u-written")
    written = aof.stat().st_size
    store.append_record({"uuid": "u-postponed"})
    _kill(store.embedded.pid)
    with open(aof, "r+b") as fh:
        fh.truncate(written)

    assert store.restart_embedded_if_dead()
    assert [r["uuid"] for r in _records(store)] == ["u-written"]
    assert store.sync_spool() == 1  # a new run_id: each file checked, the missing record added again

    assert [r["uuid"] for r in _records(store)] == ["u-written", "u-postponed"]
    assert len(store.spool.pending()) == 2  # deleted only once this server has held them 60 s


def test_a_second_process_sharing_the_spool_never_adds_a_record_twice(make_store) -> None:
    serve, worker = make_store(0.3), make_store(0.3)
    serve.append_record({"uuid": "u-1"})
    assert worker.sync_spool() == 0  # too young: the process that wrote it is adding it
    time.sleep(0.4)

    assert worker.sync_spool() == 0  # Redis has its marker: held, then deleted
    time.sleep(0.4)
    assert worker.sync_spool() == 0 and serve.sync_spool() == 0

    assert serve.spool.pending() == [] and [r["uuid"] for r in _records(serve)] == ["u-1"]


def test_a_second_process_adopts_the_redis_left_running_by_a_killed_serve(state_dir: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from controller.state.embedded_redis import EmbeddedRedis, _pid_alive
        r = EmbeddedRedis({str(state_dir / "redis")!r}).start()
        r.client().xadd("t:calls", {{"record": '{{"uuid": "u-orphan"}}'}})
        print(r.pid, flush=True)
        time.sleep(60)
    """)
    serve = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        redis_pid = int(serve.stdout.readline())
    finally:
        serve.kill()
        serve.wait()

    adopted = EmbeddedRedis(state_dir / "redis").start()
    try:
        assert adopted.adopted and adopted.pid == redis_pid
        client = adopted.client()
        assert [json.loads(f[b"record"])["uuid"] for _, f in client.xrange("t:calls")] == ["u-orphan"]
        client.close()
    finally:
        adopted.stop()
    assert not adopted.alive() and not (state_dir / "redis" / "redis.sock").exists()


def test_a_stale_pid_file_naming_another_process_does_not_stop_the_start(state_dir: Path) -> None:
    data = state_dir / "redis"
    data.mkdir()
    (data / "redis.pid").write_text(str(os.getpid()))
    (data / "redis.sock").write_text("")

    server = EmbeddedRedis(data).start()
    try:
        assert server.client().ping() and server.pid != os.getpid()
    finally:
        server.stop()


def test_the_embedded_redis_keeps_running_while_another_process_uses_it(state_dir: Path) -> None:
    owner = EmbeddedRedis(state_dir / "redis").start()
    ours = owner.client()
    ours.ping()  # a connection of this process does not keep the server up
    script = textwrap.dedent(f"""
        import time
        from controller.state.embedded_redis import EmbeddedRedis, _pid_alive
        client = EmbeddedRedis({str(state_dir / "redis")!r}).client()
        client.ping()
        print("connected", flush=True)
        time.sleep(60)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "connected"
        pid = owner.pid
        owner.stop()
        assert _alive(pid)
    finally:
        worker.kill()
        worker.wait()

    last = EmbeddedRedis(state_dir / "redis").start()
    assert last.adopted
    last.stop()
    assert not _alive(pid)
    ours.close()


def _alive(pid: int) -> bool:
    from controller.state.embedded_redis import _pid_alive

    return _pid_alive(pid)


def test_a_socket_path_too_long_for_unix_sockets_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="shorter server.state_dir or set REDIS_URL"):
        EmbeddedRedis(tmp_path / ("x" * 120)).start()


def test_a_sentinel_url_reaches_the_master_the_sentinel_names(state_dir: Path) -> None:
    from controller.state.embedded_redis import redis_server_binary

    master_port, sentinel_port = _free_ports(2)
    (state_dir / "sentinel.conf").write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {state_dir}\n"
        f"sentinel monitor calls 127.0.0.1 {master_port} 1\n")
    master = subprocess.Popen([str(redis_server_binary()), "--port", str(master_port), "--bind", "127.0.0.1",
                               "--save", "", "--dir", str(state_dir)], stdout=subprocess.DEVNULL)
    sentinel = subprocess.Popen([str(redis_server_binary()), str(state_dir / "sentinel.conf"), "--sentinel"],
                                stdout=subprocess.DEVNULL)
    try:
        client = connect(f"redis+sentinel://127.0.0.1:{sentinel_port}/calls")
        for _ in range(100):
            try:
                client.set("k", "v")
                break
            except Exception:
                time.sleep(0.05)
        direct = connect(f"redis://127.0.0.1:{master_port}/0")
        assert direct.get("k") == b"v"
        client.close()
        direct.close()
    finally:
        for proc in (sentinel, master):
            proc.terminate()
            proc.wait(timeout=10)


def test_a_sentinel_url_without_a_master_name_is_refused() -> None:
    with pytest.raises(ValueError, match="redis\\+sentinel://"):
        connect("redis+sentinel://127.0.0.1:26379")


def test_redis_url_from_the_environment_wins_over_the_config(state_dir: Path, monkeypatch) -> None:
    with EmbeddedRedis(state_dir / "ext") as external:
        monkeypatch.setenv("REDIS_URL", external.url)
        s = Store(StoreSettings(url="redis://127.0.0.1:1/0", key_prefix="env"), state_dir / "s", Clock())
        s.start(maintain=False)
        try:
            assert s.embedded is None
            assert s.append_record({"uuid": "u-env"}) is not None
            assert external.client().xlen("env:calls") == 1
        finally:
            s.close()


def _free_ports(n: int) -> list[int]:
    from tests.support.peers import free_port

    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def test_the_store_restarts_a_dead_embedded_redis_and_replays_the_spool_on_its_own(
        state_dir: Path, redis_settings: StoreSettings, monkeypatch) -> None:
    import gevent

    monkeypatch.delenv("REDIS_URL", raising=False)
    store = Store(redis_settings, state_dir, Clock(), replay_interval_s=0.05, confirm_after_s=0.1).start()
    try:
        _kill(store.embedded.pid)
        assert store.append_record({"uuid": "u-late"}) is None
        for _ in range(200):
            if not store.spool.pending():
                break
            gevent.sleep(0.02)

        assert store.embedded.alive() and store.spool.pending() == []
        assert [r["uuid"] for r in _records(store)] == ["u-late"]
    finally:
        store.close()


def test_two_processes_starting_at_once_share_one_embedded_redis(state_dir: Path) -> None:
    import threading

    servers = [EmbeddedRedis(state_dir / "redis"), EmbeddedRedis(state_dir / "redis")]
    threads = [threading.Thread(target=s.start) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert servers[0].pid == servers[1].pid
        assert sorted(s.adopted for s in servers) == [False, True]
    finally:
        for s in sorted(servers, key=lambda s: not s.adopted):
            s.stop()

