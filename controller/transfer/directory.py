"""Imported transfer directories: `numbers/<agent>.<action>.csv` next to the configuration file.

`switchboard numbers import` validates an operator's CSV completely (`check_csv`) and writes the normalised file
atomically (`write_numbers`); the transfer action loads that file beside its inline destinations
(`load_numbers`) and reloads it when it changes. The YAML is never rewritten.

The accepted file: `.csv`, at most 5 MB, UTF-8 with or without BOM, a header row `phone` with an optional
`description`; `phone` is E.164 (`+33123456789`) in a real number range, `description` one line of at most
200 printable characters that a spreadsheet would not run as a formula. A phone given twice is one number
(the first non-empty description wins).
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import phonenumbers
from phonenumbers import PhoneNumber, ValidationResult

from controller.esl.values import E164_RE, DialStringError, validate_e164
from controller.transfer.destinations import Target

MAX_BYTES = 5 * 1024 * 1024
MAX_DESCRIPTION = 200
COLUMNS = ("phone", "description")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


class NumbersError(ValueError):
    """A file that cannot be imported at all (wrong type, too big, not UTF-8, bad header, nothing in it)."""


@dataclass(frozen=True)
class NumberRow:
    phone: str
    description: str = ""


@dataclass
class CheckReport:
    """What a CSV holds: the good rows (deduplicated, in file order) and every bad line."""

    rows: list[NumberRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    merged: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows)


def numbers_file(numbers_dir: Path, agent_id: str, action_name: str) -> Path:
    """Where an action's imported numbers live: `<numbers_dir>/<agent>.<action>.csv`."""
    return numbers_dir / f"{agent_id}.{action_name}.csv"


def find_transfer(data: Any, target: str, shown: str) -> tuple[str, str]:
    """`support.to_advisor` -> ("support", "to_advisor") when the raw YAML `data` has that transfer action.

    Read from the raw YAML, not the validated models: an action whose only destinations are imported must be
    importable before its file exists (until then `check` refuses the configuration).
    """
    agents = data.get("agents") if isinstance(data, dict) else None
    found = []
    for agent_id, agent in (agents.items() if isinstance(agents, dict) else ()):
        actions = agent.get("actions") if isinstance(agent, dict) else None
        during = actions.get("during_call") if isinstance(actions, dict) else None
        for action in during if isinstance(during, list) else ():
            if isinstance(action, dict) and action.get("type") == "transfer" and isinstance(action.get("name"), str):
                found.append(f"{agent_id}.{action['name']}")
    if target not in found:
        choices = ", ".join(found) or "none: add a transfer action under agents.<id>.actions.during_call"
        raise NumbersError(f"{target!r} is not a transfer action of {shown} (AGENT.ACTION; transfer actions: "
                           f"{choices})")
    agent_id, _, action_name = target.partition(".")
    return agent_id, action_name


def _show(value: str, limit: int = 60) -> str:
    """A value as it may be printed on a terminal: control characters escaped, long values cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def phone_problem(phone: str) -> Optional[str]:
    """Why `phone` is not a valid E.164 number, or None.

    The common case skips phonenumbers' text parser (most of its cost): the country code is looked up and the
    national number checked against the same metadata; anything unusual takes the full parser for its reason.
    """
    if E164_RE.fullmatch(phone):
        digits = phone[1:]
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in _CODES:
                national = digits[size:]
                if national and national[0] != "0":
                    number = PhoneNumber(country_code=code, national_number=int(national))
                    if (phonenumbers.is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE
                            and phonenumbers.is_valid_number(number)):
                        return None
                break
    try:
        normalised = validate_e164(phone, "phone")
    except DialStringError as exc:
        return exc.reason
    return None if normalised == phone else f"is written {normalised} in E.164"


def description_problem(text: str) -> Optional[str]:
    if len(text) > MAX_DESCRIPTION:
        return f"is {len(text)} characters long; at most {MAX_DESCRIPTION}"
    if text.startswith(_FORMULA_START):
        return f"starts with {text[0]!r}, which a spreadsheet would run as a formula"
    bad = next((c for c in text if not c.isprintable()), None)
    if bad is not None:
        return f"contains the control character {bad!r}"
    if "${" in text:
        return "contains '${', which FreeSWITCH would expand"
    return None


def _decode(path: Path) -> str:
    if path.suffix.lower() != ".csv":
        raise NumbersError(f"{path}: only .csv files are imported (got {path.suffix or 'no extension'!r})")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise NumbersError(f"{path}: {size / 1024 / 1024:.1f} MB; at most 5 MB (split the directory or shorten "
                               "the descriptions)")
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise NumbersError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise NumbersError(f"{path}: more than 5 MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NumbersError(f"{path}: line {line}: not UTF-8 (byte {data[exc.start]:#04x}); save it as UTF-8") \
            from None


def _records(text: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(line number where the record starts, its fields or None, the csv error) for every record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, str(exc)
            return
        yield start, fields, None
        start = reader.line_num + 1


def check_csv(path: Path) -> CheckReport:
    """Validate an operator's CSV completely: every bad line is reported as `line N: value: reason`."""
    records = _records(_decode(path))
    first = next(records, None)
    if first is None or first[1] is None or not any(f.strip() for f in first[1]):
        raise NumbersError(f"{path}: line 1: no header row; the first line must be `phone` or `phone,description`")
    header = [name.strip().lower() for name in first[1]]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or "phone" not in header or len(set(header)) != len(header):
        raise NumbersError(f"{path}: line 1: header {_show(','.join(first[1]))!r}; the columns are phone "
                           "(required) and description (optional)")
    phone_at, desc_at = header.index("phone"), header.index("description") if "description" in header else None
    report = CheckReport()
    seen: dict[str, int] = {}
    for line, fields, error in records:
        if fields is None:
            report.problems.append(f"line {line}: {error}; nothing after it was read")
            break
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            report.problems.append(f"line {line}: {_show(','.join(fields))}: has {len(fields)} columns; the "
                                   f"header has {len(header)}")
            continue
        phone, description = fields[phone_at].strip(), fields[desc_at].strip() if desc_at is not None else ""
        problem = phone_problem(phone)
        if problem:
            report.problems.append(f"line {line}: {_show(phone) or '(empty)'}: {problem}")
            continue
        problem = description_problem(description)
        if problem:
            report.problems.append(f"line {line}: {_show(description)}: description {problem}")
            continue
        if phone in seen:
            report.merged += 1
            index = seen[phone]
            if description and not report.rows[index].description:
                report.rows[index] = NumberRow(phone, description)
            continue
        seen[phone] = len(report.rows)
        report.rows.append(NumberRow(phone, description))
    return report


def render_csv(rows: list[NumberRow]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows((row.phone, row.description) for row in rows)
    return buffer.getvalue()


def write_numbers(path: Path, rows: list[NumberRow]) -> None:
    """Replace `path` atomically: a temporary file in the same directory, fsynced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(render_csv(rows))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_numbers(path: Path) -> tuple[list[NumberRow], int]:
    """The rows of a file written by `write_numbers` (fast: no phonenumbers parsing), and how many were skipped.

    A hand-edited line that is not E.164 or whose description is unsafe is skipped; every number is checked
    again by the dial-string builder before it is dialled.
    """
    rows: list[NumberRow] = []
    skipped = 0
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    if "phone" not in header:
        return [], 0
    phone_at, desc_at = header.index("phone"), header.index("description") if "description" in header else None
    seen: set[str] = set()
    try:
        for fields in reader:
            if len(fields) != len(header):
                skipped += bool(fields)
                continue
            phone = fields[phone_at].strip()
            description = fields[desc_at].strip() if desc_at is not None else ""
            if not E164_RE.fullmatch(phone) or phone in seen or description_problem(description):
                skipped += 1
                continue
            seen.add(phone)
            rows.append(NumberRow(phone, description))
    except csv.Error:
        skipped += 1
    return rows, skipped


def targets_for(action: Any, imported_file: Path) -> tuple[list[Target], int]:
    """What a transfer action can reach: its inline destinations, then its imported numbers (minus duplicates).

    Returns the targets and how many lines of the imported file were skipped.
    """
    targets = [Target(d.id, d.description, agent=d.agent) if hasattr(d, "agent")
               else Target(d.id, d.description, number=d.number) for d in action.destinations]
    if not imported_file.is_file():
        return targets, 0
    inline = {t.number for t in targets if t.number}
    taken = {t.id for t in targets}
    rows, skipped = load_numbers(imported_file)
    for row in rows:
        ident = "n" + row.phone[1:]
        if row.phone in inline or ident in taken:
            continue
        targets.append(Target(ident, row.description, number=row.phone, imported=True))
    return targets, skipped
