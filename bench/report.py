#!/usr/bin/env python3
"""Turns the samples bench/bench.sh collected into the table (or --json).

Usage: report.py DIR [--json]. DIR holds meta.json and one file per series,
one number per line (NAME.txt), plus scale.json and ndp-*.json. Never
asserts anything: it prints numbers, ratios and the goals beside them.
"""
import json
import math
import os
import statistics
import sys


def load(d, name):
    p = os.path.join(d, name + ".txt")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [float(x) for x in f.read().split()]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return math.nan
    k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


def stats(xs):
    if not xs:
        return None
    return {"n": len(xs), "min": min(xs), "p50": statistics.median(xs),
            "p95": pct(xs, 95), "max": max(xs)}


def ratio(a, b):
    return a / b if a and b else math.nan


def main():
    d = sys.argv[1]
    as_json = "--json" in sys.argv[2:]
    meta = json.load(open(os.path.join(d, "meta.json")))
    out = {"meta": meta, "pairs": [], "scale": None, "ndp": {}}

    def pair(title, unit, ours, theirs, goal, key="p50", higher_better=False):
        s_o, s_t = stats(load(d, ours)), stats(load(d, theirs))
        if not s_o or not s_t:
            return
        r = ratio(s_o[key], s_t[key])
        out["pairs"].append({"what": title, "unit": unit, "v6bridge": s_o, "builtin": s_t,
                             "ratio_p50": r, "ratio_p95": ratio(s_o["p95"], s_t["p95"]),
                             "goal": goal, "higher_is_better": higher_better})

    pair("container start (docker run --rm busybox true)", "ms", "start-v6bridge", "start-builtin", "<= 1.05")
    pair("network create + remove", "ms", "net-v6bridge", "net-builtin", "<= 1.10")
    pair("data path, NAT66 to the internet ns (iperf3 TCP), fast path", "Mbit/s", "iperf-v6bridge", "iperf-builtin", ">= 1.20",
         higher_better=True)
    pair("data path, NAT66 (iperf3 TCP), FASTPATH=false", "Mbit/s", "iperf-v6bridge-nofp", "iperf-builtin", ">= 0.98",
         higher_better=True)
    pair("request/response, a new connection per HTTP GET to a published port, fast path", "req/s", "rr-v6bridge",
         "rr-builtin", ">= 1.00", higher_better=True)
    pair("request/response, FASTPATH=false", "req/s", "rr-v6bridge-nofp", "rr-builtin", ">= 1.00", higher_better=True)

    sp = os.path.join(d, "scale.json")
    if os.path.exists(sp):
        s = json.load(open(sp))
        a = s["attach_ms"]
        extra = json.load(open(os.path.join(d, "scale-extra.json")))
        first, last = a[:10], a[-10:]
        out["scale"] = {
            "endpoints": s["endpoints"], "total_s": s["total_s"],
            "attach_1_10_ms": stats(first), "attach_last10_ms": stats(last),
            "ratio": ratio(statistics.median(last), statistics.median(first)),
            "join_1_10_ms": statistics.median(s["join_ms"][:10]),
            "join_last10_ms": statistics.median(s["join_ms"][-10:]),
            "rules_after_first": s["rules_first"], "rules_after_last": s["rules_last"],
            **extra,
        }
    for kind in ("v6bridge", "ndppd"):
        p = os.path.join(d, "ndp-%s.json" % kind)
        if os.path.exists(p):
            out["ndp"][kind] = json.load(open(p))

    if as_json:
        json.dump(out, sys.stdout, indent=2, allow_nan=True)
        print()
        return

    m = meta
    print("v6bridge benchmarks, %s" % m["date"])
    print("machine: %s, %s cores, %s; kernel %s" % (m["cpu"], m["cores"], m["mem"], m["kernel"]))
    print("engine: %s (API %s), v6bridge %s as a host service; scale and NDP: %s" % (
        m["engine"], m["api"], m["version"], m["scale_how"]))
    print("fast path (flowtable) during the data runs: %s" % m.get("fastpath", "not measured"))
    print()
    print("| measurement | unit | v6bridge min / p50 / p95 / max | built-in min / p50 / p95 / max | ratio p50 (p95) | goal |")
    print("|---|---|---|---|---|---|")
    f = lambda x: ("%.0f" % x) if abs(x) >= 100 else ("%.1f" % x)
    for p in out["pairs"]:
        o, t = p["v6bridge"], p["builtin"]
        print("| %s (n=%d) | %s | %s / %s / %s / %s | %s / %s / %s / %s | %.2f (%.2f) | %s |" % (
            p["what"], o["n"], p["unit"], f(o["min"]), f(o["p50"]), f(o["p95"]), f(o["max"]),
            f(t["min"]), f(t["p50"]), f(t["p95"]), f(t["max"]), p["ratio_p50"], p["ratio_p95"], p["goal"]))
    s = out["scale"]
    if s:
        a1, a2 = s["attach_1_10_ms"], s["attach_last10_ms"]
        print()
        print("Scale: %d endpoints on one public network, one published tcp port each, plugin API driven directly "
              "(RequestAddress + CreateEndpoint + Join + ProgramExternalConnectivity), %.1f s in all" % (
                  s["endpoints"], s["total_s"]))
        print()
        print("| measurement | value | goal |")
        print("|---|---|---|")
        print("| attach 1-10, ms min / p50 / max | %.1f / %.1f / %.1f | |" % (a1["min"], a1["p50"], a1["max"]))
        print("| attach %d-%d, ms min / p50 / max | %.1f / %.1f / %.1f | |" % (
            s["endpoints"] - 9, s["endpoints"], a2["min"], a2["p50"], a2["max"]))
        print("| ratio (p50 last 10 / first 10) | %.2f (Join alone: %.1f -> %.1f ms) | <= 1.2 |" % (
            s["ratio"], s["join_1_10_ms"], s["join_last10_ms"]))
        print("| nftables rules after endpoint 1 / %d | %d / %d | constant |" % (
            s["endpoints"], s["rules_after_first"], s["rules_after_last"]))
        print("| plugin RSS after %d attaches / after restart | %.1f / %.1f MiB | <= 30 MiB |" % (
            s["endpoints"], s["rss_mib"], s["rss_restart_mib"]))
        print("| start-up reconcile with that state | %s | <= 1 s |" % s["reconcile"])
    if out["ndp"]:
        print()
        print("NDP: solicitations from the router namespace, 1 in 10 for one of the %d live addresses, " % (out["scale"] or {}).get("endpoints", 1000) +
              "the rest for random addresses of the /64")
        print()
        print("| responder | sent | rate/s | live answered / asked | p50 | p99 | max | CPU per 10k NS |")
        print("|---|---|---|---|---|---|---|---|")
        for k, r in out["ndp"].items():
            print("| %s | %d | %d | %d / %d | %.0f us | %.0f us | %.0f us | %.0f ms |" % (
                k, r["sent"], r["rate_per_s"], r["answered"], r["probes"], r["p50_us"], r["p99_us"], r["max_us"],
                r.get("cpu_ms_per_10k", math.nan)))


if __name__ == "__main__":
    main()
