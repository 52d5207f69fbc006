"""A transfer outside its windows is offered to the brain marked closed, with its next opening (midnight, DST,
holidays), from the action the runtime builds with an injected clock."""
from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from controller.actions import build_actions
from controller.actions.context import Services
from controller.clock import FixedClock
from controller.config.load import load_config
from controller.runtime import Runtime
from tests.support.transfer import transfer_config

PARIS = ZoneInfo("Europe/Paris")
NIGHTS = {"timezone": "Europe/Paris", "closed_dates": ["2026-12-25"],
          "windows": [{"days": ["Friday"], "hours": "22:00-02:00"}, {"days": ["Sunday"], "hours": "02:30-04:00"},
                      {"days": ["Sunday"], "hours": "02:00-03:00"}]}


@pytest.fixture
def spec_at(tmp_path):
    config = load_config(transfer_config(tmp_path, {"schedule": NIGHTS, "destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]}))
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=PARIS))
    action = build_actions(config.agents["support"], Services(config, Runtime(config, clock=clock).store, clock))["to_advisor"]

    def spec(*local, fold=0):
        clock.set(datetime(*local, tzinfo=PARIS, fold=fold))
        return action.spec(SimpleNamespace(clock=clock))
    return spec


def test_a_window_that_crosses_midnight_stays_open_after_midnight_and_belongs_to_its_start_day(spec_at):
    assert spec_at(2026, 6, 5, 23, 0).state == "open"  # Friday
    assert spec_at(2026, 6, 6, 1, 59).state == "open"  # Saturday, still Friday's window
    closed = spec_at(2026, 6, 6, 2, 0)
    assert (closed.state, closed.next_opening) == ("closed", "2026-06-07T02:00:00+02:00")


def test_a_holiday_closes_the_window_that_starts_on_it_including_after_midnight(spec_at):
    christmas_night = spec_at(2026, 12, 26, 0, 30)  # Saturday after a Friday that is a closed date
    assert christmas_night.state == "closed" and christmas_night.next_opening == "2026-12-27T02:00:00+01:00"


def test_a_window_in_the_hour_skipped_by_daylight_saving_opens_at_the_jump(spec_at):
    before = spec_at(2026, 3, 29, 1, 59)  # Sunday; 02:00-03:00 does not exist that night in Paris
    assert before.state == "closed" and before.next_opening == "2026-03-29T03:00:00+02:00"


def test_the_hour_repeated_when_daylight_saving_ends_is_open_both_times(spec_at):
    for fold in (0, 1):  # 02:30 CEST, then 02:30 CET an hour later
        assert spec_at(2026, 10, 25, 2, 30, fold=fold).state == "open"
    assert spec_at(2026, 10, 25, 3, 0).state == "open"  # the 02:30-04:00 window
    closed = spec_at(2026, 10, 25, 4, 0)
    assert closed.state == "closed" and closed.next_opening == "2026-10-30T22:00:00+01:00"
