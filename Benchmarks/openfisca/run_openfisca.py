#!/usr/bin/env python3
"""Screen a population of leases for the state-property rent waiver with OpenFisca.

    python run_openfisca.py --input population.jsonl [--repeat 3]
    python run_openfisca.py --generate N [--seed S] --out population.jsonl

The first form loads the population (JSON Lines, one lease a line) into numpy arrays, then
`--repeat` times builds an OpenFisca simulation from them and calculates `amount_fen`,
`eligible` and `incomplete` for 2022, and prints one JSON line:

    {"engine": "openfisca", "openfisca_core_version": "46.0.1", "numpy_version": "…",
     "python_version": "3.11.7", "leases": N, "eligible": E, "incomplete": I,
     "total_amount_fen": T, "load_seconds": …, "build_seconds": …, "calculate_seconds": …,
     "calculate_cpu_seconds": …, "leases_per_second": N / calculate_seconds, "repeat": R,
     "threads": 1, "threads_note": "…", "peak_rss_mib": …}

Loading (reading and parsing the file into arrays) is not counted. `build_seconds` is
creating the simulation and setting its inputs; `calculate_seconds` is the calculation only.
Both are the best of the repeats, each on a fresh simulation (OpenFisca caches results).

The second form writes N random leases in the input format, for running this standalone.
"""

import os

# One core: numpy's element-wise operations are single-threaded anyway; this also keeps any
# BLAS/OpenMP pool that a library might use to one thread. Must be set before numpy is imported.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from openfisca_core.simulations import SimulationBuilder  # noqa: E402

from bangfu_country import CountryTaxBenefitSystem  # noqa: E402
from bangfu_country.variables import Kind, Ownership, Size, Status, Use  # noqa: E402

PERIOD = "2022"
BOOL_FIELDS = ("service_industry", "disqualified", "bad_credit", "chain_complete", "sublet")
INT16 = numpy.int16


def _codes(enum, null=None, other=None):
    """String → enum index; `null` is the member for JSON null, `other` for unlisted strings."""
    table = {member.value: i for i, member in enumerate(enum)}
    table[None] = None if null is None else list(enum).index(null)
    return table, (None if other is None else list(enum).index(other))


KIND = _codes(Kind)
SIZE = _codes(Size)
STATUS = _codes(Status, other=Status.OTHER)
OWNERSHIP = _codes(Ownership, null=Ownership.UNKNOWN, other=Ownership.OTHER)
USE = _codes(Use, other=Use.OTHER)


def _encode(table, strings, field):
    codes, other = table
    out = numpy.empty(len(strings), dtype=INT16)
    for i, s in enumerate(strings):
        c = codes.get(s, other)
        if c is None:
            raise ValueError(f"lease {i + 1}: unexpected {field} {s!r}")
        out[i] = c
    return out


def load(path):
    """Read a JSON Lines population into the arrays the simulation takes (not timed)."""
    cols = {k: [] for k in ("lease_id", "kind", "size", "status", "root_ownership", "use",
                            "monthly_rent_fen", "starts_on", "ends_on", *BOOL_FIELDS)}
    appenders = [(k, cols[k].append) for k in cols]
    loads = json.loads
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            d = loads(line)
            for k, append in appenders:
                append(d[k])
    n = len(cols["lease_id"])
    rent = numpy.array(cols["monthly_rent_fen"], dtype=numpy.int64)
    if n and rent.min() < 0:
        raise ValueError("a monthly_rent_fen is negative")
    arrays = {
        "kind": _encode(KIND, cols["kind"], "kind"),
        "size": _encode(SIZE, cols["size"], "size"),
        "status": _encode(STATUS, cols["status"], "status"),
        "root_ownership": _encode(OWNERSHIP, cols["root_ownership"], "root_ownership"),
        "use": _encode(USE, cols["use"], "use"),
        "monthly_rent_fen": rent,
        "starts_on": numpy.array(cols["starts_on"], dtype="datetime64[D]"),
        "ends_on": numpy.array(cols["ends_on"], dtype="datetime64[D]"),
    }
    for k in BOOL_FIELDS:
        arrays[k] = numpy.array(cols[k], dtype=numpy.bool_)
    return cols["lease_id"], arrays


def build(tbs, ids, arrays):
    """An OpenFisca simulation with one `lease` per row and the facts as ETERNITY inputs."""
    builder = SimulationBuilder()
    builder.create_entities(tbs)
    builder.declare_person_entity("lease", ids)
    sim = builder.build(tbs)
    for name, values in arrays.items():
        sim.set_input(name, "ETERNITY", values)
    return sim


def calculate(sim):
    amount = sim.calculate("amount_fen", PERIOD)
    eligible = sim.calculate("eligible", PERIOD)
    incomplete = sim.calculate("incomplete", PERIOD)
    return amount, eligible, incomplete


def evaluate(rows):
    """Per-lease results for a list of input dicts (for tests): [(eligible, incomplete, amount, overlap)]."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    try:
        ids, arrays = load(f.name)
    finally:
        os.unlink(f.name)
    sim = build(CountryTaxBenefitSystem(), ids, arrays)
    amount, eligible, incomplete = calculate(sim)
    overlap = sim.calculate("overlap_days", PERIOD)
    return [
        (bool(e), bool(i), int(a), int(o)) for e, i, a, o in zip(eligible, incomplete, amount, overlap)
    ]


def bench(path, repeat):
    import openfisca_core  # noqa: F401
    from importlib.metadata import version

    t0 = time.perf_counter()
    ids, arrays = load(path)
    load_seconds = time.perf_counter() - t0
    n = len(ids)
    tbs = CountryTaxBenefitSystem()

    best_build = best_calc = best_calc_cpu = float("inf")
    figures = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        sim = build(tbs, ids, arrays)
        t1 = time.perf_counter()
        c0 = time.process_time()
        amount, eligible, incomplete = calculate(sim)
        c1 = time.process_time()
        t2 = time.perf_counter()
        got = (int(eligible.sum()), int(incomplete.sum()), int(amount.sum(dtype=numpy.int64)))
        if figures is not None and got != figures:
            raise RuntimeError(f"results differ between runs: {figures} then {got}")
        figures = got
        best_build = min(best_build, t1 - t0)
        if t2 - t1 < best_calc:
            best_calc, best_calc_cpu = t2 - t1, c1 - c0
        del sim, amount, eligible, incomplete

    eligible_n, incomplete_n, total = figures
    return {
        "engine": "openfisca",
        "openfisca_core_version": version("openfisca-core"),
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
        "leases": n,
        "eligible": eligible_n,
        "incomplete": incomplete_n,
        "total_amount_fen": total,
        "load_seconds": round(load_seconds, 6),
        "build_seconds": round(best_build, 6),
        "calculate_seconds": round(best_calc, 6),
        "calculate_cpu_seconds": round(best_calc_cpu, 6),
        "leases_per_second": round(n / best_calc, 1) if best_calc > 0 else None,
        "repeat": max(1, repeat),
        "threads": 1,
        "threads_note": "OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS=1 set before importing numpy; "
        "numpy element-wise operations run on one thread; compare calculate_cpu_seconds "
        "with calculate_seconds",
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def generate(n, seed, out):
    """N random leases in the input format (the Swift side uses its own exporter)."""
    rng = numpy.random.default_rng(seed)
    kinds = numpy.where(rng.random(n) < 0.4, "individual", "enterprise")
    sizes = rng.choice(["micro", "small", "medium", "large", "unknown"], n, p=[0.5, 0.25, 0.12, 0.03, 0.10])
    sizes = numpy.where(kinds == "individual", "individual", sizes)
    ind_unknown = (kinds == "individual") & (rng.random(n) < 0.05)  # individuals with no size tag
    sizes = numpy.where(ind_unknown, "unknown", sizes)
    service = rng.random(n) < 0.7
    status = rng.choice(["active", "suspended", "deregistered"], n, p=[0.97, 0.02, 0.01])
    disq = rng.random(n) < 0.002
    bad = rng.random(n) < 0.01
    chain = rng.random(n) >= 0.02
    owner = rng.choice(["state_enterprise", "government", "private"], n, p=[0.2, 0.15, 0.65]).astype(object)
    owner[(~chain) | (rng.random(n) < 0.01)] = None
    sublet = rng.random(n) < 0.05
    use = rng.choice(["business", "residential", "office", "warehouse", "other"], n, p=[0.85, 0.05, 0.05, 0.03, 0.02])
    rent = rng.integers(800, 20_001, n, dtype=numpy.int64) * 100
    base = numpy.datetime64("2020-01-01", "D")
    starts = base + rng.integers(0, 1000, n)  # 2020-01-01 .. 2022-09-26
    ends = starts + rng.integers(30, 1500, n)
    u = rng.integers(0, 10**16, n)
    with open(out, "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "uscc": f"91{u[i]:016d}",
                "lease_id": f"L-{seed}-{i}",
                "kind": str(kinds[i]),
                "size": str(sizes[i]),
                "service_industry": bool(service[i]),
                "status": str(status[i]),
                "disqualified": bool(disq[i]),
                "bad_credit": bool(bad[i]),
                "root_ownership": owner[i] and str(owner[i]),
                "chain_complete": bool(chain[i]),
                "sublet": bool(sublet[i]),
                "use": str(use[i]),
                "monthly_rent_fen": int(rent[i]),
                "starts_on": str(starts[i]),
                "ends_on": str(ends[i]),
            }, ensure_ascii=False, separators=(",", ":")) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="population, JSON Lines")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the best is reported (default 3)")
    ap.add_argument("--generate", type=int, metavar="N", help="write N random leases to --out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="file for --generate")
    a = ap.parse_args(argv)
    if a.generate is not None:
        if not a.out:
            ap.error("--generate needs --out")
        generate(a.generate, a.seed, a.out)
        return 0
    if not a.input:
        ap.error("--input (or --generate) is required")
    print(json.dumps(bench(a.input, a.repeat), separators=(", ", ": ")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
