#!/usr/bin/env python3
"""Writes tests/fixtures/croniter.json: what croniter, an independent implementation,
answers for the cron grammar CoreFlow reads (SPEC §7).

For each expression and each starting instant (UTC, and zones with daylight saving), the
next fire times as croniter computes them, as UTC instants. `src/triggers/cron_tests.rs`
compares CoreFlow's `next_fire` chains with this table; Python is not needed at test time.

Usage (from the repository root):
    python3 -m venv /tmp/croniter-venv
    /tmp/croniter-venv/bin/pip install croniter
    /tmp/croniter-venv/bin/python scripts/croniter_table.py

Six-field expressions have their seconds first (croniter's `second_at_beginning=True`).
Fires after 2099 are left out (zone rules that far ahead are extrapolated differently).
Expressions whose day fields croniter reads differently from cron(8) (`W` or `#` with a
restricted other day field) are not in the table: see docs/src/schedules.md, "Schedules and DST".
"""

import json
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

FIRES = 20

EXPRESSIONS = [
    # Steps, ranges, lists, names.
    "* * * * *",
    "*/15 * * * *",
    "5-50/15 9-17 * * *",
    "0 */6 * * *",
    "30 2 * * *",
    "*/20 1-3 * * *",
    "0 9 * * MON-FRI",
    "0 9 * * 1-5",
    "15 14 1 * *",
    "0 0 * JAN,APR,JUL,OCT *",
    "0 12 * feb-mar sun",
    "0,30 8-10 * * SAT,SUN",
    "0 22 * * 5-7",
    "0 0 * * 7",
    "10/20 * * * *",
    "0 0 */10 * *",
    "59 23 31 DEC *",
    "0 0 29 2 *",
    "0 0 * * FRI-MON",
    "0 22-2 * * *",
    # Both day fields restricted: a day matches if either matches.
    "0 0 1-7 * MON",
    "0 12 1,15 * FRI",
    "0 0 13 * 5",
    "30 6 */2 * 1-5",
    "0 0 1 * 0-6",
    "0 0 1-31 * */2",
    "0 8 L * SUN",
    # L, W, #.
    "0 0 L * *",
    "0 23 L 2 *",
    "0 0 1,15,L * *",
    "0 0 15W * *",
    "0 0 1W * *",
    "0 0 * * 1#2",
    "0 0 * * FRI#3",
    "0 10 * * 1#1,5#5",
    # Macros.
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    # Six fields, seconds first.
    "*/20 * * * * *",
    "15 30 2 * * *",
    "0 0 12 * * MON#1",
    "30 */5 9-10 * * 1-5",
    "0 0 0 L * *",
]

# (zone, start as a UTC instant): spread over 2025-2030, the zone ones just before a
# daylight-saving change so that the hourly and daily chains cross it.
STARTS = [
    ("UTC", "2025-01-01T00:00:00Z"),
    ("UTC", "2028-02-28T23:59:30Z"),
    ("UTC", "2030-12-31T22:00:00Z"),
    ("Europe/Berlin", "2026-03-28T21:00:00Z"),  # spring forward 2026-03-29 01:00Z
    ("Europe/Berlin", "2027-10-30T21:30:00Z"),  # fall back 2027-10-31 01:00Z
    ("America/New_York", "2025-11-02T02:00:00Z"),  # fall back 2025-11-02 06:00Z
    ("America/New_York", "2029-03-11T01:00:00Z"),  # spring forward 2029-03-11 07:00Z
    ("Australia/Sydney", "2026-04-04T09:00:00Z"),  # fall back 2026-04-04 16:00Z
    ("Australia/Sydney", "2028-09-30T13:00:00Z"),  # spring forward 2028-09-30 16:00Z
]


def utc(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def fires(expr, zone, start):
    seconds = not expr.startswith("@") and len(expr.split()) == 6
    local = start.astimezone(ZoneInfo(zone))
    it = croniter(expr, local, ret_type=datetime, second_at_beginning=seconds)
    out = []
    for _ in range(FIRES):
        at = it.get_next(datetime).astimezone(timezone.utc)
        if at.year > 2099:
            break
        out.append(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def main():
    root = Path(__file__).resolve().parent.parent
    target = root / "tests" / "fixtures" / "croniter.json"
    cases = [
        {"expr": expr, "zone": zone, "start": start, "fires": fires(expr, zone, utc(start))}
        for expr in EXPRESSIONS
        for zone, start in STARTS
    ]
    header = {
        "generator": "scripts/croniter_table.py",
        "croniter": version("croniter"),
        "fires": "the next fires strictly after start, as UTC instants (none after 2099)",
    }
    lines = [json.dumps(case, separators=(",", ":")) for case in cases]
    text = json.dumps(header, indent=1)[:-2] + ',\n "cases": [\n' + ",\n".join(lines) + "\n]}\n"
    json.loads(text)  # well-formed
    target.write_text(text)
    print(f"{target.relative_to(root)}: {len(cases)} cases, {len(text)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
