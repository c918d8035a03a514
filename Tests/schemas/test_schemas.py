"""Checks docs/schemas: the JSON Schemas (draft 2020-12) of the registry's events (and the matcher's application.assessed) and their samples.

1. every schema is itself a valid draft 2020-12 schema;
2. every valid sample validates against its type's schema (and its check digits, dates and
   date ranges are right, so it is valid for the service too);
3. every invalid sample with schema_catches true fails its schema, and with false passes it
   (those are the cases only the service catches: check digits, impossible dates, ranges);
4. with BANGFU_BIN set: every sample sent to a real bangfu-registry is accepted (valid) or
   rejected with its expect_code (invalid).

$refs between the schema files resolve through an in-memory `referencing` Registry: no network.
`format` is not asserted (draft 2020-12 treats it as an annotation), matching schema_catches.
Run with Tests/schemas/run, or `pytest -q Tests/schemas` where jsonschema is installed.
"""
import datetime
import json
import os
import re
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
SAMPLES = SCHEMAS / "samples"

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
ID_RE = re.compile(r"[0-9]{17}[0-9X]")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# Fact types the registry intake takes (DESIGN §4); merchant.profiled is its output.
FACT_TYPES = [
    "business.registered", "business.status_changed", "finance.reported", "tax.period_reported",
    "social_insurance.reported", "lease.registered", "closure.reported", "damage.reported",
    "credit.flagged", "credit.cleared", "account.verified", "aid.received", "fraud.confirmed",
]
OUTPUT_TYPES = ["merchant.profiled", "application.assessed"]
ALL_TYPES = FACT_TYPES + OUTPUT_TYPES
EXPECT_CODES = {"invalid_data", "invalid_uscc", "invalid_id_number", "invalid_date",
                "invalid_amount", "invalid_envelope"}
# Every fact type has invalid samples for at least these kinds of mistake.
REQUIRED_CASE_CODES = {"invalid_data", "invalid_uscc"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SCHEMA_FILES = sorted(SCHEMAS.glob("*.schema.json"))
SCHEMA_DOCS = {p.name: load(p) for p in SCHEMA_FILES}


def build_registry():
    resources = []
    for doc in SCHEMA_DOCS.values():
        resources.append((doc["$id"], Resource.from_contents(doc)))
    # No `retrieve`: an unknown $ref fails (Unresolvable) instead of going to the network.
    return Registry().with_resources(resources)


REGISTRY = build_registry()


def validator(type_):
    return Draft202012Validator(SCHEMA_DOCS[f"{type_}.schema.json"], registry=REGISTRY)


def errors(type_, event):
    return sorted(validator(type_).iter_errors(event), key=lambda e: list(e.path))


def describe(errs):
    return "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errs)


def valid_samples():
    out = []
    for path in sorted((SAMPLES / "valid").glob("*.json")):
        type_ = path.name[: -len(".json")]
        doc = load(path)
        for i, ev in enumerate(doc if isinstance(doc, list) else [doc]):
            out.append(pytest.param(type_, ev, id=f"{type_}[{i}]"))
    return out


def invalid_samples():
    out = []
    for path in sorted((SAMPLES / "invalid").glob("*.json")):
        stem = path.name[: -len(".json")]
        type_, _, case = stem.rpartition(".")
        out.append(pytest.param(type_, case, load(path), id=stem))
    return out


VALID = valid_samples()
INVALID = invalid_samples()


# ---------- 1. the schemas themselves ----------

def test_every_type_has_a_schema():
    names = set(SCHEMA_DOCS)
    assert {"common.schema.json", "cloudevent.schema.json"} <= names
    missing = [t for t in ALL_TYPES if f"{t}.schema.json" not in names]
    assert not missing, f"no schema for {missing}"


@pytest.mark.parametrize("name", sorted(SCHEMA_DOCS))
def test_schema_is_valid(name):
    doc = SCHEMA_DOCS[name]
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].endswith("/" + name)


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_schema_refs_resolve_offline(type_):
    # Validating a minimal object walks the $refs to the envelope and common definitions.
    list(validator(type_).iter_errors({"data": {}}))


# ---------- 2. valid samples ----------

def test_every_type_has_valid_and_invalid_samples():
    have_valid = {p.values[0] for p in VALID}
    assert set(ALL_TYPES) <= have_valid, f"no valid sample for {set(ALL_TYPES) - have_valid}"
    codes = {}
    for p in INVALID:
        codes.setdefault(p.values[0], []).append(p.values[2]["expect_code"])
    for t in ALL_TYPES:
        assert len(codes.get(t, [])) >= 3, f"fewer than 3 invalid samples for {t}"
    for t in FACT_TYPES:
        assert REQUIRED_CASE_CODES <= set(codes[t]), f"{t} lacks invalid cases for {REQUIRED_CASE_CODES - set(codes[t])}"
    all_codes = {c for cs in codes.values() for c in cs}
    assert EXPECT_CODES <= all_codes, f"no invalid sample for {EXPECT_CODES - all_codes}"


def test_sample_ids_are_unique():
    # Each sample must be a fresh (source, id): a reused id with other content is a `conflict`.
    seen = {}
    events = [p.values[1] for p in VALID] + [p.values[2]["event"] for p in INVALID]
    for ev in events:
        key = (ev.get("source"), ev.get("id"))
        if isinstance(key[0], str) and isinstance(key[1], str) and key[1]:
            assert key not in seen, f"source+id {key} used twice"
            seen[key] = ev


@pytest.mark.parametrize("type_,event", VALID)
def test_valid_sample_validates(type_, event):
    errs = errors(type_, event)
    assert not errs, describe(errs)
    assert event["type"] == type_


def uscc_ok(code):
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS))
    return code[17] == USCC_ALPHABET[(31 - total % 31) % 31]


def id_number_ok(code):
    total = sum(int(c) * w for c, w in zip(code[:17], ID_WEIGHTS))
    return code[17] == "10X98765432"[total % 11]


def walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


@pytest.mark.parametrize("type_,event", VALID)
def test_valid_sample_passes_service_rules(type_, event):
    """What the schema cannot see: check digits, real calendar dates, date order."""
    for path, v in walk(event):
        if not isinstance(v, str):
            continue
        last = path.rsplit(".", 1)[-1]
        if (last.endswith("uscc") or last == "subject") and USCC_RE.fullmatch(v):
            assert uscc_ok(v), f"{path}: USCC {v} has a wrong check digit"
        if last == "id_number" and "*" not in v:  # masked (4110**********1234) in profiles
            assert ID_RE.fullmatch(v) and id_number_ok(v), f"{path}: ID number {v} has a wrong check digit"
        if DATE_RE.fullmatch(v):
            datetime.date.fromisoformat(v)
    data = event["data"]
    if type_ == "lease.registered":
        assert data["starts_on"] <= data["ends_on"]
    if type_ == "closure.reported":
        assert data["from"] <= data["to"]


# ---------- 3. invalid samples ----------

@pytest.mark.parametrize("type_,case,sample", INVALID)
def test_invalid_sample(type_, case, sample):
    assert set(sample) == {"expect_code", "schema_catches", "event"}, "sample keys"
    assert type_ in ALL_TYPES, f"unknown type in file name: {type_}"
    if type_ in FACT_TYPES:
        assert sample["expect_code"] in EXPECT_CODES
    else:
        assert sample["expect_code"] is None, "output types are not sent to an intake"
    errs = errors(type_, sample["event"])
    if sample["schema_catches"]:
        assert errs, f"{case}: expected the schema to reject this event"
    else:
        assert not errs, f"{case}: only the service should catch this, but the schema says: {describe(errs)}"
    if sample["expect_code"] == "invalid_uscc" and not sample["schema_catches"]:
        bad = [v for p, v in walk(sample["event"].get("data"))
               if isinstance(v, str) and p.rsplit(".", 1)[-1].endswith("uscc") and not uscc_ok(v)]
        assert bad, f"{case}: no USCC with a wrong check digit"
    if sample["expect_code"] == "invalid_id_number" and not sample["schema_catches"]:
        bad = [v for p, v in walk(sample["event"].get("data"))
               if isinstance(v, str) and p.endswith("id_number") and not id_number_ok(v)]
        assert bad, f"{case}: no ID number with a wrong check digit"


# ---------- 4. against a running bangfu-registry (only with BANGFU_BIN) ----------

def conformance_dir():
    env = os.environ.get("BANGFU_CONFORMANCE_DIR")
    return Path(env) if env else HERE.parents[3] / "shared" / "conformance"


@pytest.fixture(scope="module")
def registry_intake(tmp_path_factory):
    if not os.environ.get("BANGFU_BIN"):
        pytest.skip("BANGFU_BIN is not set: not checking samples against a running registry")
    zmq = pytest.importorskip("zmq")
    sys.path.insert(0, str(conformance_dir()))
    try:
        from bangfu_wire import Intake, Service
    finally:
        sys.path.pop(0)
    ctx = zmq.Context()
    svc = Service("bangfu-registry", tmp_path_factory.mktemp("registry")).start(ctx, timeout_s=60)
    intake = Intake(ctx, svc.endpoint("intake"))
    try:
        yield intake, svc
    finally:
        intake.close()
        svc.stop()
        ctx.destroy(linger=0)


def send(registry_intake, event):
    intake, svc = registry_intake
    try:
        return intake.publish(event)
    except TimeoutError:
        pytest.fail(f"no acknowledgement from bangfu-registry; log tail:\n{svc.tail()}")


FACT_VALID = [p for p in VALID if p.values[0] in FACT_TYPES]
FACT_INVALID = [p for p in INVALID if p.values[0] in FACT_TYPES]


@pytest.mark.parametrize("type_,event", FACT_VALID)
def test_registry_accepts_valid_sample(registry_intake, type_, event):
    ack = send(registry_intake, event)
    assert ack.get("status") == "accepted", f"{type_}: {ack}"
    assert ack.get("id") == event["id"]


@pytest.mark.parametrize("type_,case,sample", FACT_INVALID)
def test_registry_rejects_invalid_sample(registry_intake, type_, case, sample):
    ack = send(registry_intake, sample["event"])
    assert ack.get("status") == "rejected", f"{case}: {ack}"
    assert (ack.get("error") or {}).get("code") == sample["expect_code"], f"{case}: {ack}"
