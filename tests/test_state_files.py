"""Call data on disk (the Redis append-only file, the spool) is for the service's user alone, whatever the umask."""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from controller.cli.main import main
from controller.clock import Clock
from controller.state.connection import StoreSettings
from controller.state.store import Store

MINIMAL = Path(__file__).resolve().parent / "configs" / "minimal.yaml"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, under which new files are 0644 and new directories 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _open_to_others(root: Path) -> dict[str, str]:
    """Every directory and regular file under `root` (itself included) that group or others may access."""
    found = {}
    for path in (root, *root.rglob("*")):
        mode = path.lstat().st_mode
        if (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) and mode & 0o077:
            found[str(path.relative_to(root))] = oct(stat.S_IMODE(mode))
    return found


def test_state_created_under_umask_022_is_readable_by_its_user_alone(
        state_dir: Path, redis_settings: StoreSettings, umask_022: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    root = state_dir / "var" / "state"  # missing parents are created too
    store = Store(redis_settings, root, Clock()).start(maintain=False)  # default confirm_after_s: the file stays
    try:
        store.append_record({"uuid": "u-1", "transcript": [{"who": "caller", "text": "my card number is"}]})
        store.redis.bgrewriteaof()  # the rewritten AOF is created by redis-server itself
        aof = root / "redis" / "appendonly.aof"
        for _ in range(500):
            if b"u-1" in aof.read_bytes() and not int(store.redis.info("persistence")["aof_rewrite_in_progress"]):
                break
            time.sleep(0.01)
        files = {str(p.relative_to(root)) for p in root.rglob("*")}
        assert "redis/appendonly.aof" in files and len(store.spool.pending()) == 1
        assert _open_to_others(state_dir / "var") == {}
    finally:
        store.close()


def test_check_warns_when_existing_state_can_be_read_by_other_users(tmp_path: Path) -> None:
    (tmp_path / "state" / "redis").mkdir(parents=True, mode=0o700)
    (tmp_path / "state" / "spool").mkdir(mode=0o755)
    aof = tmp_path / "state" / "redis" / "appendonly.aof"
    aof.write_text("*1\r\n")
    aof.chmod(0o644)
    config = tmp_path / "agent.yaml"
    config.write_text(MINIMAL.read_text(encoding="utf-8"), encoding="utf-8")

    result = CliRunner().invoke(main, ["--log-text", "check", str(config)])

    assert result.exit_code == 0 and result.stdout.startswith("OK: 1 agent")
    state = tmp_path / "state"
    assert (f"warning: {config}: server.state_dir: 2 paths holding call data can be read by other local users "
            f"({state / 'redis' / 'appendonly.aof'} 0644, {state / 'spool'} 0755); fix: chmod -R go= {state}"
            ) in result.stderr
