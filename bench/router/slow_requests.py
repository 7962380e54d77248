#!/usr/bin/env python3
"""What the slowest requests of a gateway benchmark run waited for.

Reads PREFIX.data (a `perf record -a -k mono` trace of scheduler switches, wake-ups, migrations
and softirqs) and PREFIX.samples (`fixed_rate_load --samples-out`: per request its target,
connection and scheduled/sent/done times in CLOCK_MONOTONIC ns), both written by
`TRACE_OUT=PREFIX run_gateway_overhead.sh`, and prints per target:
  - service time (sent -> done) p50/p90/p99, and the load generator's own lateness
    (scheduled -> sent), which every target shares;
  - for its slowest 5% and its faster half: how many saw a task migrate to the other CPU (on a
    VM each such wake-up goes through the host), saw the load generator preempted before it
    slept, or saw another task of ours or the kernel's run;
  - with --show N, the event timeline of the N slowest requests of --target.

    bench/router/slow_requests.py /tmp/gw.1000 [--target enclave-gateway] [--show 3]
"""
import argparse
import bisect
import collections
import re
import subprocess
import sys

EVENT = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)")
SWITCH = re.compile(
    r"prev_comm=(.*?) prev_pid=(\d+).*prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)")
WAKING = re.compile(r"comm=(.*?) pid=(\d+).*target_cpu=(\d+)")
MIGRATE = re.compile(r"comm=(.*?) pid=(\d+).*orig_cpu=(\d+) dest_cpu=(\d+)")
CHAIN = {"fixed_rate_load", "enclave", "nginx"}


def read_events(path):
    text = subprocess.run(
        ["perf", "script", "-i", path, "-F", "comm,tid,cpu,time,event,trace", "--ns"],
        check=True, capture_output=True, text=True).stdout
    events = []
    for line in text.splitlines():
        m = EVENT.match(line)
        if m:
            comm, tid, cpu, t, name, rest = m.groups()
            events.append((round(float(t) * 1e9), int(cpu), comm, name.split(":")[-1], rest))
    events.sort()
    return events


def read_samples(path, t0, t1):
    out = []
    with open(path) as f:
        next(f)
        for line in f:
            target, conn, scheduled, sent, done = line.split()
            s = (target, int(conn), int(scheduled), int(sent), int(done))
            if s[3] > t0 and s[4] < t1:
                out.append(s)
    return out


def window(events, times, start, end):
    return events[bisect.bisect_left(times, start):bisect.bisect_right(times, end)]


def classify(evs):
    migrated, preempted_loadgen, others = [], False, set()
    for _, _, _, name, rest in evs:
        if name == "sched_migrate_task":
            migrated.append(MIGRATE.search(rest).group(1))
        elif name == "sched_switch":
            m = SWITCH.search(rest)
            if m.group(1) == "fixed_rate_load" and m.group(3).startswith("R"):
                preempted_loadgen = True
            nxt = m.group(4)
            if nxt not in CHAIN and not nxt.startswith("swapper"):
                others.add(nxt)
    return tuple(migrated), preempted_loadgen, tuple(sorted(others))


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def describe(name, rest):
    if name == "sched_switch":
        m = SWITCH.search(rest)
        return f"{m.group(1)}({m.group(3)}) -> {m.group(4)}"
    if name == "sched_waking":
        m = WAKING.search(rest)
        return f"wakes {m.group(1)} (cpu{m.group(3)})"
    if name == "sched_migrate_task":
        m = MIGRATE.search(rest)
        return f"moves {m.group(1)} cpu{m.group(3)} -> cpu{m.group(4)}"
    return rest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefix", help="TRACE_OUT prefix with the rate, e.g. /tmp/gw.1000")
    ap.add_argument("--target", default="enclave-gateway")
    ap.add_argument("--show", type=int, default=0, help="timelines of the N slowest requests")
    args = ap.parse_args()
    events = read_events(args.prefix + ".data")
    if not events:
        sys.exit(f"{args.prefix}.data holds no events (was perf allowed to trace?)")
    times = [e[0] for e in events]
    samples = read_samples(args.prefix + ".samples", times[0], times[-1])
    by_target = collections.defaultdict(list)
    for s in samples:
        by_target[s[0]].append(s)
    for target, group in sorted(by_target.items()):
        service = sorted((s[4] - s[3]) / 1e3 for s in group)
        late = sorted((s[3] - s[2]) / 1e3 for s in group)
        print(f"{target}: {len(group)} requests in the trace; service p50 {pct(service, .5):.0f} "
              f"p90 {pct(service, .9):.0f} p99 {pct(service, .99):.0f} us; load generator "
              f"late p50 {pct(late, .5):.0f} p99 {pct(late, .99):.0f} us")
        slow_from, fast_below = pct(service, .95), pct(service, .5)
        for label, part in (
                ("slowest 5%", [s for s in group if (s[4] - s[3]) / 1e3 >= slow_from]),
                ("faster half", [s for s in group if (s[4] - s[3]) / 1e3 < fast_below])):
            if not part:
                continue
            kinds = [classify(window(events, times, s[3], s[4])) for s in part]
            n = len(part)
            moved = sum(1 for k in kinds if k[0])
            pre = sum(1 for k in kinds if k[1])
            other = sum(1 for k in kinds if k[2])
            print(f"  {label:11s} n={n:5d}: a task moved CPU {100 * moved / n:3.0f}%, load "
                  f"generator preempted {100 * pre / n:3.0f}%, another task ran {100 * other / n:3.0f}%")
            common = collections.Counter(k[2] for k in kinds if k[2]).most_common(3)
            if common:
                print("    others: " + "; ".join(f"{', '.join(o)} x{c}" for o, c in common))
    slowest = sorted(by_target.get(args.target, []), key=lambda s: s[3] - s[4])[:args.show]
    for target, conn, scheduled, sent, done in slowest:
        print(f"\n{target} conn {conn}: {(done - sent) / 1e3:.0f} us (late {(sent - scheduled) / 1e3:.0f})")
        for t, cpu, comm, name, rest in window(events, times, sent, done):
            if name != "sched_wakeup":
                print(f"  {(t - sent) / 1e3:8.1f} us cpu{cpu} {comm[:15]:15s} {describe(name, rest)}")


if __name__ == "__main__":
    main()
