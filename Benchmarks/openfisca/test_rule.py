"""Hand-computed cases for the OpenFisca rent-waiver rule, and a row-by-row cross-check.

    python -m pytest -q test_rule.py
"""

import datetime
import json
import os
import sys
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run_openfisca  # noqa: E402

BASE = {
    "uscc": "91411000MA00000000",
    "lease_id": "L-1",
    "kind": "enterprise",
    "size": "small",
    "service_industry": True,
    "status": "active",
    "disqualified": False,
    "bad_credit": False,
    "root_ownership": "state_enterprise",
    "chain_complete": True,
    "sublet": False,
    "use": "business",
    "monthly_rent_fen": 300000,
    "starts_on": "2021-01-01",
    "ends_on": "2024-12-31",
}


def lease(**changes):
    return {**BASE, **changes}


def one(**changes):
    """(eligible, incomplete, amount_fen, overlap_days) of one lease."""
    return run_openfisca.evaluate([lease(**changes)])[0]


def test_whole_half_year_is_three_months():
    assert one() == (True, False, 900000, 181)


def test_61_days_pro_rata():
    # 300000 × 12 × 61 / 365 = 601643.835… → 601644
    assert one(starts_on="2022-05-01", ends_on="2022-06-30") == (True, False, 601644, 61)


def test_exactly_90_days_is_three_months():
    assert one(starts_on="2022-04-02", ends_on="2022-06-30") == (True, False, 900000, 90)


def test_89_days_pro_rata():
    # 300000 × 12 × 89 / 365 = 877808.219… → 877808
    assert one(starts_on="2022-04-03", ends_on="2022-06-30") == (True, False, 877808, 89)


def test_rounds_once_to_the_nearest_fen():
    # rent × 12 × days is even and 365 is odd, so an exact half fen cannot occur; check both sides.
    # 146 × 12 × 1 / 365 = 4.8 → 5; 73 × 12 × 1 / 365 = 2.4 → 2
    assert one(monthly_rent_fen=146, starts_on="2022-06-30", ends_on="2022-07-31")[2] == 5
    assert one(monthly_rent_fen=73, starts_on="2022-06-30", ends_on="2022-07-31")[2] == 2


def test_large_rent_does_not_overflow():
    # 5,000,000 yuan a month for 89 days: 500000000 × 12 × 89 / 365 = 1463013698.63… → 1463013699
    assert one(monthly_rent_fen=500_000_000, starts_on="2022-04-03")[2] == 1463013699
    assert one(monthly_rent_fen=900_000_000)[2] == 2_700_000_000


def test_private_root_is_not_eligible():
    assert one(root_ownership="private") == (False, False, 0, 181)


def test_government_root_is_eligible():
    assert one(root_ownership="government")[:3] == (True, False, 900000)


def test_sublet_is_not_eligible():
    assert one(sublet=True)[:3] == (False, False, 0)


def test_medium_is_not_eligible():
    assert one(size="medium")[:3] == (False, False, 0)


def test_individual_business_needs_no_size():
    assert one(kind="individual", size="individual")[:3] == (True, False, 900000)
    assert one(kind="individual", size="unknown")[:3] == (True, False, 900000)


def test_unknown_size_is_incomplete():
    assert one(size="unknown")[:3] == (False, True, 0)


def test_unknown_size_with_a_false_clause_is_ineligible():
    # false && unknown is false
    assert one(size="unknown", sublet=True)[:3] == (False, False, 0)


def test_incomplete_chain_is_incomplete():
    assert one(chain_complete=False, root_ownership=None)[:3] == (False, True, 0)
    assert one(root_ownership=None)[:3] == (False, True, 0)


def test_lease_outside_the_period_is_not_eligible():
    assert one(starts_on="2022-07-01", ends_on="2023-06-30") == (False, False, 0, 0)
    assert one(starts_on="2020-01-01", ends_on="2021-12-31") == (False, False, 0, 0)


def test_one_day_overlap_at_each_end():
    assert one(starts_on="2021-06-01", ends_on="2022-01-01")[3] == 1
    assert one(starts_on="2022-06-30", ends_on="2022-12-31")[3] == 1


def test_negative_list():
    assert one(status="suspended")[:3] == (False, False, 0)
    assert one(status="deregistered")[:3] == (False, False, 0)
    assert one(disqualified=True)[:3] == (False, False, 0)
    assert one(bad_credit=True)[:3] == (False, False, 0)
    assert one(service_industry=False)[:3] == (False, False, 0)
    assert one(use="residential")[:3] == (False, False, 0)
    assert one(use="other")[:3] == (False, False, 0)


def test_revision_2_who_and_what_premises():
    # Every individual business, in any industry; the service-industry condition is on enterprises.
    assert one(kind="individual", size="individual", service_industry=False)[:3] == (True, False, 900000)
    assert one(size="unknown", service_industry=False)[:3] == (False, False, 0)
    # Premises used for the business: offices, workshops and warehouses too.
    for use in ("office", "industrial", "warehouse"):
        assert one(use=use)[:3] == (True, False, 900000)
    assert one(size="large")[:3] == (False, False, 0)


# --- cross-check against a plain row-by-row reading of the policy ---------------------------

P0, P1 = datetime.date(2022, 1, 1), datetime.date(2022, 6, 30)


def reference(r):
    """Kleene three-valued reading of policies/soe-rent-waiver.yaml, one lease at a time."""
    s = datetime.date.fromisoformat(r["starts_on"])
    e = datetime.date.fromisoformat(r["ends_on"])
    days = max(0, (min(e, P1) - max(s, P0)).days + 1)
    U = None
    size = U if r["size"] == "unknown" else r["size"] in ("small", "micro")
    # kind == "individual" || (size in [small, micro] && service_industry), in Kleene logic.
    enterprise_clause = (
        False if size is False or not r["service_industry"] else U if size is U else True
    )
    size_clause = True if r["kind"] == "individual" else enterprise_clause
    root_clause = (
        U if not r["chain_complete"] or r["root_ownership"] is None
        else r["root_ownership"] in ("state_enterprise", "government")
    )
    clauses = [
        r["status"] == "active", not r["disqualified"], size_clause,
        root_clause, not r["sublet"], r["use"] in ("business", "office", "industrial", "warehouse"),
        days > 0, not r["bad_credit"],
    ]
    if False in clauses:
        return (False, False, 0, days)
    if U in clauses:
        return (False, True, 0, days)
    if days >= 90:
        amount = r["monthly_rent_fen"] * 3
    else:
        q = Fraction(r["monthly_rent_fen"] * 12 * days, 365)
        amount = int(q + Fraction(1, 2))  # q >= 0: half away from zero
    return (True, False, amount, days)


def test_generated_population_matches_reference(tmp_path):
    path = tmp_path / "p.jsonl"
    run_openfisca.generate(20000, 7, str(path))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    got = run_openfisca.evaluate(rows)
    want = [reference(r) for r in rows]
    assert got == want
    assert sum(g[0] for g in got) > 1000 and sum(g[1] for g in got) > 100
    assert any(g[0] and g[3] < 90 for g in got)  # some pro-rata cases are exercised


def test_bench_output(tmp_path):
    path = tmp_path / "p.jsonl"
    run_openfisca.generate(5000, 3, str(path))
    out = run_openfisca.bench(str(path), 2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    want = [reference(r) for r in rows]
    assert out["engine"] == "openfisca" and out["leases"] == 5000
    assert out["eligible"] == sum(w[0] for w in want)
    assert out["incomplete"] == sum(w[1] for w in want)
    assert out["total_amount_fen"] == sum(w[2] for w in want)
    assert out["calculate_seconds"] > 0 and out["leases_per_second"] > 0
