#!/usr/bin/env python3
"""No personal data in clear in a demo run's logs or on its public board (DESIGN §3.5).

Usage: check_logs.py DEMO_DIR

Scans every *.log file and the board (index.html, data.json, data.csv) for resident ID numbers
(18 characters, valid GB 11643 check digit), bank account numbers (the demo's 6222… accounts,
16–19 digits) and mobile phone numbers (1[3-9] + 9 digits), and for the clear values the demo
actually used: every registration's legal representative ID and phone, every verified account
number, read back from the registry's intake log. Exits 1 naming the file and line of the first
hit, so a leak cannot hide behind an unusual format.
"""
import json
import re
import sqlite3
import sys
from pathlib import Path

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def valid_id(s):
    total = sum(int(c) * w for c, w in zip(s[:17], ID_WEIGHTS))
    return "10X98765432"[total % 11] == s[17]


PATTERNS = [
    ("resident ID number", re.compile(r"(?<![0-9A-Z])[0-9]{17}[0-9X](?![0-9A-Z])"), valid_id),
    ("bank account number", re.compile(r"(?<![0-9])6222[0-9]{12,15}(?![0-9])"), None),
    ("phone number", re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])"), None),
]


def clear_values(demo):
    """The personal data the demo published, from the registry's own intake log."""
    db = demo / "registry" / "registry.sqlite"
    values = set()
    if not db.exists():
        return values
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for (body,) in con.execute("SELECT body FROM bus_intake WHERE type IN ('business.registered', 'account.verified')"):
        try:
            data = json.loads(bytes(body)).get("data", {})
        except (ValueError, TypeError):
            continue
        for v in (data.get("legal_rep", {}).get("id_number"), data.get("phone"), data.get("account_no")):
            if isinstance(v, str) and len(v) >= 8:
                values.add(v)
    return values


def main():
    demo = Path(sys.argv[1])
    files = sorted(demo.glob("*.log")) + [demo / "board" / n for n in ("index.html", "data.json", "data.csv")]
    files = [f for f in files if f.exists()]
    if not files:
        print(f"pii check: FAIL: no logs or board under {demo}")
        return 1
    values = clear_values(demo)
    lines = 0
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            lines += 1
            for what, rx, ok in PATTERNS:
                for m in rx.finditer(line):
                    if ok is None or ok(m.group(0)):
                        print(f"pii check: FAIL: {what} in clear at {f}:{n}: …{line[max(0, m.start() - 20):m.end() + 20]}…")
                        return 1
            for v in values:
                if v in line:
                    print(f"pii check: FAIL: a published personal value in clear at {f}:{n}")
                    return 1
    print(f"pii check: OK: {lines} lines in {len(files)} files, {len(values)} known personal values, none in clear")
    print(f"pii: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
