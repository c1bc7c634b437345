"""Go's civil calendar and time zones, as OPA's ``time.*`` builtins see an instant.

An instant is Unix nanoseconds plus a ``Zone``; ``Civil`` is what Go's
``t.Date()``, ``t.Clock()``, ``t.Weekday()`` and ``t.YearDay()`` give for it.
``load_location`` follows Go's ``time.LoadLocation``: ``""`` and ``"UTC"`` are UTC,
``"Local"`` is the machine's zone (``TZ``, else ``/etc/localtime``), other names
are read from the system zoneinfo directories; ZoneError when Go would fail.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
import struct
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = [
    "MAX_NS",
    "MIN_NS",
    "UTC",
    "Civil",
    "Zone",
    "ZoneError",
    "civil",
    "date_to_unix",
    "days_from_civil",
    "days_in_month",
    "is_leap",
    "load_location",
    "local_zone",
    "wrap64",
]

MIN_NS = -(1 << 63)
MAX_NS = (1 << 63) - 1
NS = 1_000_000_000
_DAY = 86_400
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# NOTE: Go's platform zone sources, in its order (zoneinfo_unix.go).
_SOURCES = ("/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/")
_U64 = 1 << 64
_ABSOLUTE_YEARS = 292277022400
_ABSOLUTE_TO_UNIX = -(_ABSOLUTE_YEARS * 3652425 // 10000 + 306) * _DAY - 62135596800
_PERIOD = 146097 * _DAY  # 400 Gregorian years: zone rules repeat
_DATETIME_SPAN = (-62135596800 + 2 * _DAY, 253402300799 - 2 * _DAY)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class ZoneError(ValueError):
    """The zone name is not one Go's ``time.LoadLocation`` accepts."""


@dataclass(frozen=True)
class Zone:
    """A Go location: ``tz`` None is UTC itself (abbreviation ``UTC``, offset 0).

    ``kinds`` are the zone's local time types, (abbreviation, offset), in the
    order of its TZif data, as Go's ``Location.zone`` lists them.
    """

    name: str
    tz: dt.tzinfo | None = None
    kinds: tuple[tuple[str, int], ...] = (("UTC", 0),)

    def lookup(self, unix_sec: int) -> tuple[int, str]:
        """(offset east of UTC in seconds, abbreviation) in force at ``unix_sec``."""
        if self.tz is None:
            return 0, "UTC"
        low, high = _DATETIME_SPAN
        # NOTE: datetime spans years 1-9999; zone rules repeat every 400 years, so shift into it.
        if unix_sec > high:
            unix_sec -= ((unix_sec - high) // _PERIOD + 1) * _PERIOD
        elif unix_sec < low:
            unix_sec += ((low - unix_sec) // _PERIOD + 1) * _PERIOD
        local = (_EPOCH + dt.timedelta(seconds=unix_sec)).astimezone(self.tz)
        offset = local.utcoffset()
        seconds = 0 if offset is None else int(offset.total_seconds())
        return seconds, local.tzname() or ""


UTC = Zone("UTC")


@dataclass(frozen=True)
class Civil:
    """The wall-clock fields of an instant in a zone (Go's Date, Clock, Weekday, YearDay)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    nanosecond: int
    weekday: str
    yday: int
    offset: int
    abbrev: str


def is_leap(year: int) -> bool:
    """Gregorian leap year."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(month: int, year: int) -> int:
    """Days in ``month`` (1-12) of ``year``."""
    if month == 2:
        return 29 if is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the proleptic Gregorian date (``day`` may overflow the month)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 + day - 1


def _from_days(days: int) -> tuple[int, int, int]:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def civil(unix_ns: int, zone: Zone) -> Civil:
    """The wall clock of the instant ``unix_ns`` in ``zone``."""
    sec, nsec = divmod(unix_ns, NS)
    offset, abbrev = zone.lookup(sec)
    days, rest = divmod(sec + offset, _DAY)
    year, month, day = _from_days(days)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    yday = days - days_from_civil(year, 1, 1) + 1
    return Civil(year, month, day, hour, minute, second, nsec, _WEEKDAYS[(days + 4) % 7], yday,
                 offset, abbrev)


def wrap64(x: int) -> int:
    """``x`` as Go's int64 arithmetic leaves it (two's complement wrap-around)."""
    return (x + (1 << 63)) % (1 << 64) - (1 << 63)


def _norm(hi: int, lo: int, base: int) -> tuple[int, int]:
    if lo < 0:
        n = wrap64(wrap64(wrap64(-lo) - 1) // base + 1)
        hi, lo = wrap64(hi - n), wrap64(lo + n * base)
    if lo >= base:
        n = lo // base
        hi, lo = wrap64(hi + n), wrap64(lo - n * base)
    return hi, lo


def _abs_days(year: int, month: int, day: int) -> int:
    """Go's ``dateToAbsDays``, unsigned wrap-around included."""
    jan_feb = 1 if month < 3 else 0
    amonth = month + 12 * jan_feb
    y = (year - jan_feb + _ABSOLUTE_YEARS) % _U64
    ayday = (979 * amonth - 2919) >> 5
    century, cyear = y // 100, y % 100
    centurydays = (146097 * century % _U64) // 4
    return (centurydays + wrap64(1461 * cyear // 4 + ayday + day - 1)) % _U64


def date_to_unix(year: int, month: int, day: int, hour: int, minute: int, sec: int, zone: Zone) -> int:
    """Unix seconds of a wall clock in ``zone``, normalised as Go's ``time.Date`` does.

    Out-of-range fields carry over (month 13 is January next year, day 32 the next
    month); in a zone transition's gap or overlap the offset is chosen as Go does;
    fields beyond int64 wrap around as Go's arithmetic does.
    """
    year, m = _norm(wrap64(year), wrap64(wrap64(month) - 1), 12)
    days = _abs_days(year, m + 1, wrap64(day))
    unix = wrap64(wrap64(wrap64(days) * _DAY) + hour * 3600 + minute * 60 + sec + _ABSOLUTE_TO_UNIX)
    first, _ = zone.lookup(unix)
    if first == 0:
        return unix
    # NOTE: Go looks the offset up again at unix - offset when that leaves the zone period.
    offset, _ = zone.lookup(wrap64(unix - first))
    return wrap64(unix - offset)


def _tzif_kinds(data: bytes) -> tuple[tuple[str, int], ...]:
    """The local time types of TZif ``data`` (the 64-bit block when there is one, as Go reads)."""
    def block(at: int, time_size: int) -> tuple[tuple[tuple[str, int], ...], int]:
        isut, isstd, leap, times, types, chars = struct.unpack(">6l", data[at + 20:at + 44])
        start = at + 44 + times * time_size + times
        abbrevs = data[start + types * 6:start + types * 6 + chars]
        kinds = []
        for i in range(types):
            offset, _dst, index = struct.unpack(">lBB", data[start + i * 6:start + i * 6 + 6])
            name = abbrevs[index:].split(b"\0", 1)[0].decode("latin-1")
            kinds.append((name, offset))
        end = start + types * 6 + chars + leap * (time_size + 4) + isstd + isut
        return tuple(kinds), end

    if data[:4] != b"TZif":
        raise ValueError("not a TZif file")
    kinds, end = block(0, 4)
    if data[4:5] not in (b"\0", b""):
        kinds, _ = block(end, 8)
    return kinds


def _read(path: str, key: str) -> Zone | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return Zone(key, ZoneInfo.from_file(io.BytesIO(data), key=key), _tzif_kinds(data))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, struct.error) as exc:
        raise ZoneError(f"{key}: {exc}") from exc


@functools.lru_cache(maxsize=256)
def load_location(name: str) -> Zone:
    """Go's ``time.LoadLocation(name)``; ZoneError for an unknown or malformed name."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone()
    if ".." in name or name[0] in "/\\":
        raise ZoneError("time: invalid location name")
    first: ZoneError | None = None
    for source in _SOURCES:
        try:
            zone = _read(source + name, name)
        except ZoneError as exc:
            first = first or exc
            continue
        if zone is not None:
            return zone
    raise first or ZoneError(f"unknown time zone {name}")


@functools.lru_cache(maxsize=1)
def local_zone() -> Zone:
    """Go's ``time.Local``: ``TZ`` when set (empty is UTC), else ``/etc/localtime``, else UTC."""
    tz = os.environ.get("TZ")
    try:
        if tz is None:
            return _read("/etc/localtime", "Local") or UTC
        tz = tz.removeprefix(":")
        if tz.startswith("/"):
            return _read(tz, "Local") or UTC
        if tz not in ("", "UTC"):
            for source in _SOURCES:
                zone = _read(source + tz, "Local")
                if zone is not None:
                    return zone
    except ZoneError:
        pass
    return UTC
