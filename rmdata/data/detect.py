"""Which format an input is in (from its first records' keys), and one record -> normalized rows.

Detection looks at the first ``DETECT_SAMPLE`` records of each input and takes the format most of them point
to (:func:`rmdata.data.formats.guess_format`). When none points to one, the error shows the first records'
problems as records of the closest format, so a user sees what is wrong instead of a bare "cannot tell".
"""

from __future__ import annotations

from typing import Any

from rmdata.data.batch import RawRecord
from rmdata.data.formats import FORMATS, Format, Row, guess_format
from rmdata.data.inputs import InputInfo
from rmdata.data.rules import Problems
from rmdata.errors import RmdataError

DETECT_SAMPLE = 1000  # records looked at to detect the format
MAX_SHOWN = 20  # problems listed when detection fails


def choose_format(given: str | None, raws: list[RawRecord], info: InputInfo) -> Format:
    """The given format, or the one most of the input's first records point to (recorded on ``info``).

    When no record points to a format, the error shows the first records' problems as records of the
    closest format (the one whose keys they hold most of), or why they could not be read at all.
    """
    if given is not None:
        info.format, info.detection = given, "given"
        return FORMATS[given]
    raws = raws[:DETECT_SAMPLE]
    values = [r.value for r in raws if r.value is not None]
    votes: dict[str, int] = {}
    for name in map(guess_format, values):
        if name is not None:
            votes[name] = votes.get(name, 0) + 1
    if not votes:
        raise RmdataError(_undetected(info, raws, values))
    name = max(votes, key=lambda n: (votes[n], -list(FORMATS).index(n)))
    info.format, info.detection = name, f"detected from the keys of {votes[name]} of the first {len(values)} records"
    return FORMATS[name]


def _undetected(info: InputInfo, raws: list[RawRecord], values: list[dict[str, Any]]) -> str:
    keys = sorted({str(key) for value in values for key in value})
    known = "; ".join(f"{f.name} ({', '.join(f.required)})" for f in FORMATS.values())
    lines = [
        f"{info.path}: cannot tell the format: records have keys {', '.join(keys[:30]) or '(none readable)'}; "
        f"rmdata reads {known}; rename the columns or choose a format (--format / data.format)"
    ]
    closest = None
    if values:
        closest = max(FORMATS.values(), key=lambda f: sum(k in v for v in values for k in f.required))
        lines[0] += f"; as {closest.name} records (the closest), the first records have these problems:"
    else:
        lines[0] += "; no record could be read:"
    shown = 0
    for raw in raws:
        if shown == MAX_SHOWN:
            break
        if raw.value is None:
            lines.append(f"  {raw.location}: {raw.error}")
        elif closest is not None:
            problems = Problems()
            normalize(raw.value, closest, problems, None)
            if not problems:
                continue
            lines.append(f"  {raw.location}: {problems.items[0][1]}")
        shown += 1
    return "\n".join(lines)


def normalize(record: dict[str, Any], fmt: Format, problems: Problems, detected_in: InputInfo | None) -> list[Row]:
    """Normalize one record; a record missing the format's keys is named as another format when it is one."""
    missing = [key for key in fmt.required if key not in record]
    null = [key for key in fmt.required if key in record and record[key] is None]
    if not missing and not null:
        return fmt.normalize(record, problems)
    guess = guess_format(record) if missing else None
    if detected_in is not None and guess is not None and guess != fmt.name:
        problems.add(
            missing[0],
            f"record is in the {guess} format (keys {', '.join(FORMATS[guess].required)}), not {fmt.name} like "
            f"the rest of {detected_in.path}; one input holds one format",
        )
        return []
    for key in fmt.required:
        if key in null:
            problems.add(key, f"{key} is null ({fmt.name} records need {', '.join(fmt.required)})")
        elif key in missing:
            problems.add(key, f'missing key "{key}" ({fmt.name} records need {", ".join(fmt.required)})')
    return []
