"""Opening hours of a transfer: pure evaluation of weekly windows in a named timezone.

Windows are wall-clock times: a schedule is open whenever the local clock shows a time inside a
window. A window belongs to the day it starts on (start inclusive, end exclusive); `22:00-02:00`
crosses midnight and a closed date closes every window that *starts* that day, including its
after-midnight part. `24:00` may end a window; start and end may not be equal.

Daylight saving time follows from the wall-clock rule:
- spring forward (Europe/Paris 2026-03-29, 02:00 -> 03:00): a window starting in the skipped hour
  (say 02:30) opens at the jump, 03:00 local, because from then on the clock shows a later time;
  a window ending in the skipped hour closes at the jump.
- fall back (2026-10-25, 03:00 -> 02:00): the repeated hour is inside a window both times it is
  shown, and `next_opening` reports the first of the two instants.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Optional, Protocol, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SEARCH_DAYS = 14
_HOURS_RE = re.compile(r" *([0-9]{1,2}):([0-9]{2}) *- *([0-9]{1,2}):([0-9]{2}) *")
_DAY_INDEX = {name.lower(): i for i, name in enumerate(WEEKDAYS)}


class WindowLike(Protocol):
    days: Sequence[str]
    hours: str


class ScheduleLike(Protocol):
    timezone: str
    windows: Sequence[WindowLike]
    closed_dates: Sequence[date]


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when unknown (zoneinfo raises several types)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. Europe/Paris)") from None


def parse_days(spec: str | Sequence[str]) -> tuple[str, ...]:
    """`["Monday-Friday", "Sunday"]` or `"Saturday"` -> canonical names in week order.

    Ranges are inclusive and may wrap (`Saturday-Monday`). Names are case-insensitive.
    """
    if not isinstance(spec, (str, list, tuple)):
        raise ValueError(f"{spec!r} is not a day name or a list of day names")
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items:
        raise ValueError("no days given")
    chosen: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a day name")
        first, sep, last = item.partition("-")
        start, end = _day(first), _day(last) if sep else None
        if end is None:
            chosen.add(start)
            continue
        span = (end - start) % 7
        chosen.update((start + k) % 7 for k in range(span + 1))
    return tuple(WEEKDAYS[i] for i in sorted(chosen))


def _day(name: str) -> int:
    key = name.strip().lower()
    if key not in _DAY_INDEX:
        raise ValueError(f"{name.strip()!r} is not a day name (Monday..Sunday)")
    return _DAY_INDEX[key]


def parse_hours(hours: str) -> tuple[int, int]:
    """`"09:00-12:30"` -> (540, 750) minutes after midnight; `24:00` only as an end."""
    match = _HOURS_RE.fullmatch(hours) if isinstance(hours, str) else None
    if not match:
        raise ValueError(f"{hours!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{hours!r} has an impossible time (00:00..23:59, or 24:00 as an end)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{hours!r} starts and ends at the same time")
    return start, end


def _windows(schedule: ScheduleLike) -> list[tuple[frozenset[int], int, int]]:
    result = []
    for window in schedule.windows:
        days = frozenset(_DAY_INDEX[d.lower()] for d in parse_days(window.days))
        result.append((days, *parse_hours(window.hours)))
    return result


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("schedule evaluation needs an aware datetime (with a timezone)")
    return at


def is_open(schedule: ScheduleLike, at: datetime) -> bool:
    """True when the local wall clock at `at` is inside a window that started on an open day."""
    local = _aware(at).astimezone(zone(schedule.timezone))
    today, closed = local.date(), set(schedule.closed_dates)
    yesterday = today - timedelta(days=1)
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    for days, start, end in _windows(schedule):
        crosses = end < start
        if today.weekday() in days and today not in closed and start <= minute and (crosses or minute < end):
            return True
        if crosses and yesterday.weekday() in days and yesterday not in closed and minute < end:
            return True
    return False


def next_opening(schedule: ScheduleLike, at: datetime) -> Optional[datetime]:
    """`at` itself when open, else the first instant a window opens within 14 days (None if none).

    The result is in the schedule's timezone.
    """
    tz = zone(schedule.timezone)
    at = _aware(at)
    if is_open(schedule, at):
        return at.astimezone(tz)
    limit = at + timedelta(days=SEARCH_DAYS)
    first_day = at.astimezone(tz).date()
    closed = set(schedule.closed_dates)
    best: Optional[datetime] = None
    for offset in range(SEARCH_DAYS + 1):
        day = first_day + timedelta(days=offset)
        if day in closed:
            continue
        for days, start, _end in _windows(schedule):
            if day.weekday() not in days:
                continue
            for instant in _instants(day, start, tz):
                if at < instant <= limit and (best is None or instant < best):
                    best = instant
    return best.astimezone(tz) if best is not None else None


def _instants(day: date, minute: int, tz: ZoneInfo) -> list[datetime]:
    """The instants the local clock shows `day` at `minute`: one, two (fall back) or the jump (spring forward)."""
    naive = datetime.combine(day, time(minute // 60, minute % 60))
    found = []
    for fold in (0, 1):
        candidate = naive.replace(tzinfo=tz, fold=fold)
        utc = candidate.astimezone(timezone.utc)
        if utc.astimezone(tz).replace(tzinfo=None) == naive and utc not in found:
            found.append(utc)
    return found or [_jump(naive, tz)]


def _jump(naive: datetime, tz: ZoneInfo) -> datetime:
    """First instant at which the wall clock shows `naive` or later (the end of a DST gap)."""
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
    hi = naive.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
    if lo > hi:
        lo, hi = hi, lo
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        wall = datetime.fromtimestamp(mid, timezone.utc).astimezone(tz).replace(tzinfo=None)
        if wall >= naive:
            hi_s = mid
        else:
            lo_s = mid + 1
    return datetime.fromtimestamp(lo_s, timezone.utc)
