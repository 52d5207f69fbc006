"""Call data does not stay forever: dead letters past `redis.retention_days` go, `switchboard calls purge` erases a
caller's calls (or everything before a date) from every place call data is kept, and long digit runs can be
kept out of transcripts. A real Redis, the real CLI, the real controller with the simulator."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from click.testing import CliRunner

from controller.call.record import redact_digit_runs
from controller.cli.main import main
from controller.state.retention import expire_dead_letters, purge
from controller.state.store import Store
from tests.support.controller import call, records, running, write_config

ERASED = "+33612345678"
KEPT = "+33698765432"


def _record(uuid: str, caller: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": uuid, "record_id": f"call-{uuid}", "caller": caller, "agent": "support", "direction": "inbound",
            "transcript": [{"who": "caller", "text": "bonjour"}], **extra}


def _dead(store: Store, record: dict[str, Any], ms: int | None = None) -> str:
    entry = store.redis.xadd(store.dead_letter_key, {"record": json.dumps(record), "uuid": record["uuid"],
                                                     "reason": "test", "failures": "[]"},
                             id=f"{ms}-0" if ms is not None else "*")
    store.redis.hset(store.key("after", record["record_id"]), "attempts", 3)
    return entry.decode()


def _config(tmp_path, store: Store):
    path = tmp_path / "sb.yaml"
    path.write_text(f"server: {{state_dir: {store.state_dir}}}\n"
                    f"redis: {{url: '{store.embedded.url}', key_prefix: {store.settings.key_prefix}}}\n"
                    "agents:\n  sales: {language: en}\n", encoding="utf-8")
    return path


def test_purge_by_caller_erases_dead_letters_waiting_records_live_state_and_spool_and_nothing_else(store, tmp_path):
    _dead(store, _record("d-1", ERASED))
    _dead(store, _record("d-2", KEPT))
    _dead(store, _record("d-3", KEPT, direction="outbound", destination=ERASED))  # the erased party was called
    store.redis.xadd(store.stream_key, {"record": json.dumps(_record("w-1", ERASED))})
    store.redis.xadd(store.stream_key, {"record": json.dumps(_record("w-2", KEPT))})
    store.call_started("live-1", "support", ERASED, {"caller_number": ERASED})
    store.append_transcript("live-1", {"who": "caller", "text": "mon numéro"})
    store.call_started("live-2", "support", KEPT, {})
    store.flush()  # what a running serve does within its write-behind delay
    store.spool.write(json.dumps(_record("s-1", ERASED)), int(time.time() * 1e6))

    config = _config(tmp_path, store)
    dry = CliRunner().invoke(main, ["calls", "purge", "--caller", ERASED, "--dry-run", "--json", "--config",
                                    str(config)], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) == {"dead_letters": 2, "waiting_records": 1, "live_calls": 1, "spool_files": 1,
                                      "dry_run": True, "uuids": ["d-1", "d-3", "live-1", "w-1"]}
    assert store.redis.xlen(store.dead_letter_key) == 3  # a dry run erases nothing

    done = CliRunner().invoke(main, ["calls", "purge", "--caller", ERASED, "--config", str(config)],
                              catch_exceptions=False)
    assert done.exit_code == 0 and "erased: 2 dead letters, 1 waiting records, 1 live calls, 1 spool files" in done.stdout
    left = [json.loads(f[b"record"])["uuid"] for _, f in store.redis.xrange(store.dead_letter_key)]
    waiting = [json.loads(f[b"record"])["uuid"] for _, f in store.redis.xrange(store.stream_key)]
    assert left == ["d-2"] and waiting == ["w-2"] and store.spool.pending() == []
    assert store.call_state("live-1") == {} and store.call_state("live-2")["caller"] == KEPT
    assert not store.redis.exists(store.key("call", "live-1", "transcript"))
    assert not store.redis.exists(store.key("after", "call-d-1")) and store.redis.exists(store.key("after", "call-d-2"))


def test_purge_before_a_date_and_bad_arguments(store, tmp_path):
    _dead(store, _record("old", KEPT), ms=int(datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp() * 1000))
    _dead(store, _record("new", KEPT))
    assert purge(store, before=datetime(2026, 2, 1, tzinfo=timezone.utc)).dead_letters == 1
    assert [json.loads(f[b"record"])["uuid"] for _, f in store.redis.xrange(store.dead_letter_key)] == ["new"]
    config = _config(tmp_path, store)
    for args, message in ((["--caller", "0612"], "--caller"), (["--before", "yesterday"], "not an ISO date"),
                          ([], "exactly one of"), (["--caller", KEPT, "--before", "2026-01-01"], "exactly one of")):
        result = CliRunner().invoke(main, ["calls", "purge", *args, "--config", str(config)])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_dead_letters_past_retention_are_removed_with_their_progress(store):
    day_ms = 86400 * 1000
    now_s = time.time()
    _dead(store, _record("ancient", KEPT), ms=int(now_s * 1000) - 31 * day_ms)
    _dead(store, _record("recent", KEPT), ms=int(now_s * 1000) - 29 * day_ms)
    assert expire_dead_letters(store, 30, now_s) == 1
    assert [json.loads(f[b"record"])["uuid"] for _, f in store.redis.xrange(store.dead_letter_key)] == ["recent"]
    assert not store.redis.exists(store.key("after", "call-ancient"))
    assert expire_dead_letters(store, 30, now_s) == 0


def test_long_digit_runs_are_hidden_in_the_stored_transcript_but_the_brain_hears_them(tmp_path, session_redis):
    assert redact_digit_runs("carte 4970 1234 5678 9012, tapez 2", 6) == "carte •••• •••• •••• ••••, tapez 2"
    assert redact_digit_runs("code 12-34-56 ou 12 34", 6) == "code ••-••-•• ou 12 34"
    config = write_config(tmp_path, extra="privacy: {redact_digit_runs: 6}\n")
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"script": [{"say": "mon numéro client est 7 8 9 0 1 2 3"}, {"dtmf": "123456#"},
                                        {"say": "au revoir"}]})
        [record] = records(runtime)
    said = [t["text"] for t in record["transcript"] if t["who"] == "caller"]
    assert said[0] == "mon numéro client est • • • • • • •" and said[1] == "••••••"
    stored = json.dumps(record["transcript"], ensure_ascii=False)
    assert "7 8 9 0 1 2 3" not in stored and "123456" not in stored
    assert rec.heard[0] == ("mon numéro client est 7 8 9 0 1 2 3", True)
