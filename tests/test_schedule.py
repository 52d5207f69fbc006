"""Opening hours: windows by start day, midnight crossing, Paris DST changes, holidays."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from controller.config.transfer import Schedule
from controller.transfer.schedule import is_open, next_opening, parse_days, parse_hours

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc


def schedule(*windows, closed=(), tz="Europe/Paris"):
    return Schedule.model_validate({
        "timezone": tz,
        "windows": [{"days": days, "hours": hours} for days, hours in windows],
        "closed_dates": list(closed),
    })


def paris(*args):
    return datetime(*args, tzinfo=PARIS)


def test_a_window_is_open_from_its_start_and_closed_at_its_end():
    office = schedule((["Monday-Friday"], "09:00-12:30"))
    assert not office.is_open(paris(2026, 6, 1, 8, 59, 59))
    assert office.is_open(paris(2026, 6, 1, 9, 0))
    assert office.is_open(paris(2026, 6, 1, 12, 29, 59))
    assert not office.is_open(paris(2026, 6, 1, 12, 30))
    assert not office.is_open(paris(2026, 6, 6, 10, 0))  # a Saturday


def test_the_instant_is_read_in_the_schedule_timezone():
    office = schedule((["Monday"], "09:00-10:00"))
    assert office.is_open(datetime(2026, 6, 1, 7, 30, tzinfo=UTC))  # 09:30 in Paris (CEST)
    assert not office.is_open(datetime(2026, 6, 1, 9, 30, tzinfo=UTC))  # 11:30 in Paris


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts():
    night = schedule((["Monday"], "22:00-02:00"))
    assert not night.is_open(paris(2026, 6, 1, 21, 59))
    assert night.is_open(paris(2026, 6, 1, 23, 0))
    assert night.is_open(paris(2026, 6, 2, 1, 59))  # Tuesday morning, Monday's window
    assert not night.is_open(paris(2026, 6, 2, 2, 0))
    assert not night.is_open(paris(2026, 6, 1, 1, 0))  # Monday morning: Sunday has no window
    assert night.next_opening(paris(2026, 6, 2, 3, 0)) == paris(2026, 6, 8, 22, 0)


def test_a_window_may_end_at_24_00():
    evening = schedule((["Sunday"], "18:00-24:00"))
    assert evening.is_open(paris(2026, 6, 7, 23, 59, 59))
    assert not evening.is_open(paris(2026, 6, 8, 0, 0))


def test_a_closed_date_closes_the_windows_starting_that_day_only():
    night = schedule((["Monday-Sunday"], "22:00-02:00"), closed=[date(2026, 12, 25)])
    assert night.is_open(paris(2026, 12, 25, 1, 0))  # the 24th's window, ending on the 25th
    assert not night.is_open(paris(2026, 12, 25, 23, 0))
    assert not night.is_open(paris(2026, 12, 26, 1, 0))  # the 25th's window, after midnight
    assert night.is_open(paris(2026, 12, 26, 22, 0))


def test_after_a_holiday_the_next_opening_skips_to_the_next_open_day():
    office = schedule((["Monday-Friday"], "09:00-18:00"), closed=[date(2026, 12, 25)])
    opening = office.next_opening(paris(2026, 12, 24, 18, 0))
    assert opening == paris(2026, 12, 28, 9, 0)
    assert opening.tzinfo == PARIS


def test_the_next_opening_of_an_open_schedule_is_now():
    office = schedule((["Monday"], "09:00-10:00"))
    now = paris(2026, 6, 1, 9, 15)
    assert office.next_opening(now) == now


def test_no_opening_within_fourteen_days_gives_none():
    mondays = schedule((["Monday"], "09:00-10:00"), closed=[date(2026, 6, 8), date(2026, 6, 15)])
    assert mondays.next_opening(paris(2026, 6, 1, 11, 0)) is None
    assert mondays.next_opening(paris(2026, 6, 2, 11, 0)) is None
    assert mondays.next_opening(paris(2026, 6, 9, 11, 0)) == paris(2026, 6, 22, 9, 0)


def test_a_window_in_the_hour_skipped_in_spring_opens_when_the_clock_jumps():
    # Europe/Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST
    early = schedule((["Sunday"], "02:30-04:00"))
    assert not early.is_open(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))  # 01:59 CET
    assert early.is_open(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST
    opening = early.next_opening(paris(2026, 3, 29, 0, 30))
    assert opening.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert opening.utcoffset() == timedelta(hours=2)


def test_a_window_ending_in_the_skipped_hour_closes_when_the_clock_jumps():
    late = schedule((["Sunday"], "01:00-02:30"))
    assert late.is_open(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))  # 01:59 CET
    assert not late.is_open(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST


def test_office_hours_follow_the_local_clock_across_both_dst_changes():
    office = schedule((["Monday-Sunday"], "09:00-17:00"))
    assert office.next_opening(paris(2026, 3, 28, 18, 0)).astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert office.next_opening(paris(2026, 10, 24, 18, 0)).astimezone(UTC) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    assert office.is_open(datetime(2026, 10, 25, 15, 59, tzinfo=UTC))  # 16:59 CET
    assert not office.is_open(datetime(2026, 10, 25, 16, 0, tzinfo=UTC))


def test_the_hour_repeated_in_autumn_is_open_both_times_it_is_shown():
    # Europe/Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:00-03:00 happens twice
    repeated = schedule((["Sunday"], "02:30-02:45"))
    assert repeated.is_open(datetime(2026, 10, 25, 0, 35, tzinfo=UTC))  # 02:35 CEST
    assert not repeated.is_open(datetime(2026, 10, 25, 0, 50, tzinfo=UTC))  # 02:50 CEST
    assert repeated.is_open(datetime(2026, 10, 25, 1, 35, tzinfo=UTC))  # 02:35 CET
    opening = repeated.next_opening(datetime(2026, 10, 25, 0, 50, tzinfo=UTC))
    assert opening.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    first = repeated.next_opening(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_evaluation_needs_an_aware_datetime():
    office = schedule((["Monday"], "09:00-10:00"))
    with pytest.raises(ValueError, match="aware"):
        is_open(office, datetime(2026, 6, 1, 9, 30))
    with pytest.raises(ValueError, match="aware"):
        next_opening(office, datetime(2026, 6, 1, 9, 30))


def test_days_accept_names_and_ranges_that_may_wrap():
    assert parse_days(["Monday-Wednesday", "friday"]) == ("Monday", "Tuesday", "Wednesday", "Friday")
    assert parse_days("Saturday-Monday") == ("Monday", "Saturday", "Sunday")
    assert parse_days(["Sunday", "Sunday"]) == ("Sunday",)
    for bad in (["Lundi"], [], ["Monday-"], [3]):
        with pytest.raises(ValueError):
            parse_days(bad)


def test_hours_are_hh_mm_ranges():
    assert parse_hours("09:00-12:30") == (540, 750)
    assert parse_hours("22:00-02:00") == (1320, 120)
    assert parse_hours("00:00-24:00") == (0, 1440)
    for bad in ("9h-12h", "09:00-09:00", "24:00-01:00", "10:60-11:00", "10:00-24:30", "10:00", None):
        with pytest.raises(ValueError):
            parse_hours(bad)
