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
    out["flood"], out["start"], out["attack"] = {}, {}, {}
    for kind in ("v6bridge", "kernel", "ndppd", "none"):
        for key, prefix in (("ndp", "ndp-"), ("flood", "flood-"), ("start", "start-")):
            p = os.path.join(d, prefix + kind + ".json")
            if os.path.exists(p) and os.path.getsize(p) > 0:
                out[key][kind] = json.load(open(p))
        for mode in ("spoof", "random"):
            p = os.path.join(d, "attack-%s-%s.json" % (mode, kind))
            if os.path.exists(p) and os.path.getsize(p) > 0:
                out["attack"].setdefault(kind, {})[mode] = json.load(open(p))

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
        nd = out["ndp"]
        print()
        print("NDP goal 1, latency and cost: solicitations from the router namespace at %d/s, 1 in 10 for one of the %d live "
              "addresses, the rest for random addresses of the /64; times from solicitation out to advertisement in, both "
              "stamped by the router's kernel at its interface. Goals: CPU <= 1/2 of ndppd's, p99 <= 100 us; "
              "the kernel's proxy_ndp is the floor (its CPU is softirq, no process to charge)" % (
                  next(iter(nd.values()))["rate_per_s"], (out["scale"] or {}).get("endpoints", 1000)))
        print()
        base = (nd.get("none") or {}).get("host_ms_per_10k")
        print("| responder | sent | live answered / asked | p50 | p99 | max | process CPU per 10k NS (idle as long, taken off) | host CPU per 10k NS, softirq included (idle taken off) | host CPU the responder adds (less the run with nobody answering) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k, r in nd.items():
            cpu = r.get("cpu_ms_per_10k")
            host = r.get("host_ms_per_10k")
            if k == "none":
                print("| nobody answering | %d | 0 / %d | - | - | - | - | %.0f ms | - |" % (r["sent"], r["probes"], host))
                continue
            print("| %s | %d | %d / %d | %.0f us | %.0f us | %.0f us | %s | %s | %s |" % (
                k, r["sent"], r["answered"], r["probes"], r["p50_us"], r["p99_us"], r["max_us"],
                "%.0f ms (%.0f ms)" % (cpu, r.get("cpu_idle_ms_per_10k") or 0) if cpu is not None else "softirq",
                "%.0f ms" % host if host is not None else "-",
                "%.0f ms" % max(0, host - base) if host is not None and base is not None else "-"))
        if "v6bridge" in nd and "ndppd" in nd:
            v, n = nd["v6bridge"], nd["ndppd"]
            quot = lambda a, b: "%.2f" % (a / b) if b else "- (ndppd below a clock tick)"
            added = lambda r: max(0, (r.get("host_ms_per_10k") or 0) - (base or 0))
            print()
            print("v6bridge / ndppd CPU: process %s, host CPU added %s (goal <= 0.5); v6bridge p99 %.0f us (goal <= 100 us)" % (
                quot(v["cpu_ms_per_10k"], n["cpu_ms_per_10k"]),
                quot(added(v), added(n)) if base is not None else "-", v["p99_us"]))
    if out["flood"]:
        print()
        print("NDP goal 2, flood: solicitations for random addresses of the /64 while the router (base reachable "
              "time 1 s) keeps re-probing a live address with traffic every 100 ms. Goals: no probe lost, CPU "
              "bounded, memory flat")
        print()
        print("| responder | flood sent (rate) | router's unicast probes unanswered / sent | failed entries | responder CPU share | RSS before -> after |")
        print("|---|---|---|---|---|---|")
        for k, r in out["flood"].items():
            cpu = r.get("cpu_share")
            rss = "%.1f -> %.1f MiB" % (r["rss_before_mib"], r["rss_after_mib"]) if r.get("rss_before_mib") is not None else "-"
            print("| %s | %d in %.0f s (%.0f/s) | %d / %d | %d | %s | %s |" % (
                k, r["sent"], r["seconds"], r["rate_per_s"], r["unanswered"], r["unicast_probes"], r["failed_states"],
                "%.1f %%" % (100 * cpu) if cpu is not None else "softirq", rss))
    if out["attack"]:
        print()
        print("NDP flood row, the attacker on the /64: solicitations for random addresses of the /64, every other one "
              "for one of the other live addresses, forging the router's source addresses (link-local and global, from another MAC), then "
              "from random sources and MACs, while the router (base reachable time 1 s) keeps re-probing a live "
              "address. Goal: no probe lost")
        print()
        print("| responder | forged router source: sent (rate) | probes unanswered / sent, failed entries | random sources: sent (rate) | probes unanswered / sent, failed entries |")
        print("|---|---|---|---|---|")
        for k, modes in out["attack"].items():
            cells = []
            for mode in ("spoof", "random"):
                r = modes.get(mode)
                if r is None:
                    cells += ["-", "-"]
                    continue
                cells += ["%d in %.0f s (%.0f/s)" % (r["sent"], r["seconds"], r["rate_per_s"]),
                          "%d / %d, %d" % (r["unanswered"], r["unicast_probes"], r["failed_states"])]
            print("| %s | %s |" % (k, " | ".join(cells)))
    if out["start"]:
        print()
        print("NDP goal 3, start: each responder started with %d live addresses while the router sweeps solicitations "
              "over them (5,000/s) until every one answered. Goals: unsolicited advertisements paced, all reachable "
              "within 10 s" % next(iter(out["start"].values()))["addresses"])
        print()
        print("| responder | unsolicited seen | peak unsolicited rate | all announced after | all reachable after |")
        print("|---|---|---|---|---|")
        sec = lambda x: "%.2f s" % x if x is not None and x >= 0 else "never"
        for k, r in out["start"].items():
            print("| %s | %d | %.0f/s | %s | %s (%d of %d) |" % (
                k, r["unsolicited_seen"], r["unsolicited_peak_per_s"],
                sec(r["all_announced_s"]) if r["unsolicited_seen"] else "-",
                sec(r["all_reachable_s"]), r["reachable"], r["addresses"]))


if __name__ == "__main__":
    main()
