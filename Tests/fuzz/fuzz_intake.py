#!/usr/bin/env python3
"""Bad-input proof: malformed frames at every service's intake while good traffic flows.

Usage: fuzz_intake.py BIN_DIR [--frames N] [--seed S]

For each of the four executables (started alone on free loopback TCP ports, with a temporary
state directory and --simulated-clock), sends N malformed frames — random bytes, truncated and
deeply nested JSON, wrong types, huge strings, wrong check digits, impossible dates, negative and
fractional money, envelopes with missing attributes, unknown types, multi-frame messages — from
several DEALER sockets, while a second thread publishes good events and waits for their acks.
Checks: the service never crashes; every malformed frame that gets an answer is `rejected` with
a stable code from the documented list; the quarantine grows by the number of rejections; every
good event is `accepted`; the service still answers its readiness probe and exits 0 on SIGTERM.
"""
import argparse
import json
import os
import random
import string
import subprocess
import sys
import shutil
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "conformance"))
import zmq  # noqa: E402

from bangfu_wire import corrupt_uscc, event, make_id_number, make_uscc, registration  # noqa: E402

CODES = {"invalid_json", "invalid_envelope", "unknown_type", "invalid_data", "invalid_uscc", "invalid_id_number", "invalid_date",
         "invalid_amount", "conflict", "unauthorized", "too_large", "late"}
SERVICES = {
    "registry": [],
    "matcher": ["--registry-feed", "tcp://127.0.0.1:1", "--registry-replay", "tcp://127.0.0.1:1", "--notifier-feed", "tcp://127.0.0.1:1",
                "--notifier-replay", "tcp://127.0.0.1:1", "--payments-feed", "tcp://127.0.0.1:1", "--payments-replay", "tcp://127.0.0.1:1"],
    "payments": ["--registry-feed", "tcp://127.0.0.1:1", "--registry-replay", "tcp://127.0.0.1:1", "--matcher-feed", "tcp://127.0.0.1:1",
                 "--matcher-replay", "tcp://127.0.0.1:1"],
    "notifier": ["--registry-feed", "tcp://127.0.0.1:1", "--registry-replay", "tcp://127.0.0.1:1", "--matcher-feed", "tcp://127.0.0.1:1",
                 "--matcher-replay", "tcp://127.0.0.1:1", "--payments-feed", "tcp://127.0.0.1:1", "--payments-replay", "tcp://127.0.0.1:1"],
}
TYPES = {
    "registry": ["business.registered", "finance.reported", "lease.registered", "account.verified", "tax.period_reported", "closure.reported"],
    "matcher": ["policy.published", "application.submitted", "review.approved", "policy.withdrawn"],
    "payments": ["pool.funded", "bank.returned", "hold.released", "clawback.recovered", "payments.batch"],
    "notifier": ["objection.filed", "objection.resolved", "notifications.retry"],
}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def malformed(rng, service):
    """One hostile frame (or a multi-frame message, as a list)."""
    kind = rng.randrange(14)
    t = rng.choice(TYPES[service])
    uscc = make_uscc(rng)
    base = event(t, {"uscc": uscc, "name": "x", "year": 2021, "employees": 1, "operating_revenue_fen": 1, "total_assets_fen": 1}, uscc,
                 id_=str(uuid.UUID(int=rng.getrandbits(128))))
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        text = json.dumps(base)
        return text[: rng.randrange(1, len(text))].encode()
    if kind == 2:
        d = rng.randrange(100, 5000)
        return ("[" * d + "]" * (d if rng.random() < 0.5 else 0)).encode()
    if kind == 3:
        return json.dumps(rng.choice([1, "s", None, True, [1, 2], 3.5])).encode()
    if kind == 4:
        e = dict(base)
        e.pop(rng.choice(["specversion", "id", "source", "type"]))
        return json.dumps(e).encode()
    if kind == 5:
        e = dict(base, type="weather." + "".join(rng.choices(string.ascii_lowercase, k=6)))
        return json.dumps(e).encode()
    if kind == 6:
        e = json.loads(json.dumps(base))
        e["data"] = rng.choice([None, 5, "x", [], {"uscc": 5}])
        return json.dumps(e).encode()
    if kind == 7:
        # A huge string in a field that has a limit (the name of a registration: 200 characters);
        # for other services, in the id (256 bytes).
        e = json.loads(json.dumps(registration(uscc, "大" * rng.randrange(10_000, 100_000))))
        e["id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        if service != "registry":
            e = dict(base, id="长" * rng.randrange(1_000, 50_000))
        return json.dumps(e, ensure_ascii=False).encode()
    if kind == 8:
        e = json.loads(json.dumps(registration(uscc, "坏码")))
        e["data"]["uscc"] = corrupt_uscc(uscc)
        e["subject"] = e["data"]["uscc"]
        e["id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        return json.dumps(e).encode()
    if kind == 9:
        e = json.loads(json.dumps(registration(uscc, "坏日期")))
        e["data"]["registered_on"] = rng.choice(["2021-02-30", "2021-13-01", "yesterday", "2021-2-3", ""])
        e["id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        return json.dumps(e).encode()
    if kind == 10:
        e = json.loads(json.dumps(base))
        e["type"] = "finance.reported" if service == "registry" else e["type"]
        e["data"]["operating_revenue_fen"] = rng.choice([-1, 10.5, "100", 1e30, None, 10 ** 30])
        e["data"]["amount_fen"] = e["data"]["operating_revenue_fen"]
        return json.dumps(e).encode()
    if kind == 11:
        e = json.loads(json.dumps(registration(uscc, "坏身份证")))
        idn = make_id_number(rng)
        e["data"]["legal_rep"]["id_number"] = idn[:-1] + ("0" if idn[-1] != "0" else "1")
        e["id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        return json.dumps(e).encode()
    if kind == 12:
        return [json.dumps(base).encode()] * rng.randrange(2, 6)
    e = json.loads(json.dumps(base))
    e["specversion"] = rng.choice(["0.3", 1.0, None, ""])
    return json.dumps(e).encode()


def good(service, n):
    if service == "registry":
        return registration(make_uscc(random.Random(n)), f"好商户{n}")
    return event("clock.advanced", {"seconds": 1}, id_=f"good-{service}-{n}")


def run(bin_dir, service, frames, seed):
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix=f"bangfu-fuzz-{service}-")
    ports = [free_port() for _ in range(3)]
    eps = [f"tcp://127.0.0.1:{p}" for p in ports]
    args = [os.path.join(bin_dir, f"bangfu-{service}"), "--state-dir", tmp + "/state", "--intake", eps[0], "--feed", eps[1], "--replay", eps[2],
            "--simulated-clock", "--log-level", "error"] + SERVICES[service]
    log = open(tmp + "/log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    ctx = zmq.Context()

    def query(req, timeout=5000):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(eps[2])
        s.send(json.dumps(req).encode())
        ok = s.poll(timeout)
        out = json.loads(s.recv_multipart()[-1]) if ok else None
        s.close(0)
        return out

    for _ in range(300):
        if query({"op": "replay", "after": "0", "max": 0}, 200):
            break
        if proc.poll() is not None:
            raise SystemExit(f"{service}: exited at start:\n" + open(tmp + "/log").read())
    else:
        raise SystemExit(f"{service}: not ready")
    before = query({"op": "status"})["quarantined"]

    good_acks = []
    stop = threading.Event()

    def good_traffic():
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(eps[0])
        n = 0
        while not stop.is_set() or n < 50:
            e = good(service, n)
            s.send(json.dumps(e, ensure_ascii=False).encode())
            if not s.poll(30000):
                good_acks.append("timeout")
                break
            good_acks.append(json.loads(s.recv_multipart()[-1]).get("status"))
            n += 1
        s.close(0)

    t = threading.Thread(target=good_traffic)
    t.start()
    answered = {}
    bad_codes = []
    sent = 0
    window = 500
    socks = [ctx.socket(zmq.DEALER) for _ in range(4)]
    for s in socks:
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 100000)
        s.connect(eps[0])
    outstanding = [0] * len(socks)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    deadline = time.time() + 600
    while (sent < frames or sum(outstanding) > 0) and time.time() < deadline:
        for k, s in enumerate(socks):
            while sent < frames and outstanding[k] < window:
                f = malformed(rng, service)
                if isinstance(f, list):
                    s.send_multipart(f)
                else:
                    s.send(f)
                outstanding[k] += 1
                sent += 1
        events = dict(poller.poll(2000))
        if not events:
            if proc.poll() is not None:
                raise SystemExit(f"{service}: CRASHED (exit {proc.returncode}):\n" + open(tmp + "/log").read()[-3000:])
            break  # the remaining frames got no answer (allowed only for dropped peers)
        for k, s in enumerate(socks):
            if s in events:
                while True:
                    try:
                        ack = json.loads(s.recv_multipart(zmq.NOBLOCK)[-1])
                    except zmq.Again:
                        break
                    outstanding[k] -= 1
                    st = ack.get("status")
                    answered[st] = answered.get(st, 0) + 1
                    if st == "rejected":
                        code = ack.get("error", {}).get("code")
                        if code not in CODES or not ack["error"].get("message"):
                            bad_codes.append(ack)
    stop.set()
    t.join()
    for s in socks:
        s.close(0)
    alive = proc.poll() is None and query({"op": "replay", "after": "0", "max": 0}) is not None
    after = query({"op": "status"})["quarantined"] if alive else -1
    proc.terminate()
    code = proc.wait(30)
    rejected = answered.get("rejected", 0)
    problems = []
    if not alive:
        problems.append("the service died")
    if bad_codes:
        problems.append(f"{len(bad_codes)} rejections without a stable code, e.g. {bad_codes[0]}")
    if answered.get("accepted", 0) or answered.get("duplicate", 0):
        problems.append(f"malformed frames were accepted: {answered}")
    if rejected < frames * 0.99:
        problems.append(f"only {rejected} of {frames} malformed frames were answered")
    if after - before != rejected:
        problems.append(f"quarantine grew by {after - before}, not by the {rejected} rejections")
    if any(a != "accepted" for a in good_acks) or not good_acks:
        problems.append(f"good traffic not all accepted: {set(good_acks)} over {len(good_acks)}")
    if code != 0:
        problems.append(f"SIGTERM exit status {code}")
    print(f"fuzz {service}: {sent} malformed frames sent, {rejected} rejected with stable codes and quarantined, "
          f"{len(good_acks)} good events accepted meanwhile, exit {code}" + (": " + "; ".join(problems) if problems else ": OK"))
    if problems:
        print(f"fuzz {service}: state and log kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)  # a gigabyte of quarantined frames
    return not problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--services", default="registry,matcher,payments,notifier")
    a = ap.parse_args()
    results = [run(a.bin, s, a.frames, a.seed + i) for i, s in enumerate(a.services.split(","))]
    passed = sum(results)
    print(f"fuzz: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
