#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the results of scripts/bench, and turns the output of one
benchmark command into a line of those results.

    bench_report.py render RESULTS COMMANDS OUT     the report (machine figures from the
                                                    environment scripts/bench sets)
    bench_report.py record LABELS EXIT              one result line: the labels (JSON), the
                                                    exit status, and the JSON document on
                                                    standard input
    bench_report.py redis-benchmark KIND SIZE CONCURRENCY PIPELINE
                                                    one result line per test of the
                                                    `redis-benchmark --csv` on standard input

Run from the repository root (the report reads the Cargo.lock files).
"""
import csv
import json
import os
import re
import subprocess
import sys


def sh(command):
    """What a shell command prints, for the machine's description."""
    try:
        return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception as err:
        return f"unknown ({err})"

def lock_versions(path, names):
    """"name version" of each of `names` the lockfile at `path` holds, in that order."""
    with open(path) as lock:
        text = lock.read()
    found = {}
    for block in text.split("[[package]]"):
        name = re.search(r'^name = "([^"]+)"', block, re.M)
        version = re.search(r'^version = "([^"]+)"', block, re.M)
        if name and version and name.group(1) in names:
            found.setdefault(name.group(1), []).append(version.group(1))
    return ", ".join(f"{name} {' / '.join(found[name])}" for name in names if name in found)

def fmt_rate(value):
    return f"{value:,.0f}" if value is not None else "-"

def fmt_us(value):
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"

def fmt_ratio(value):
    return f"{value:.2f}" if value is not None else "-"

def cpu_ticks(line):
    # Everything but idle and iowait. Interrupt time counts as busy: a process's own CPU
    # time includes the softirq work done in its context (loopback networking), which
    # /proc/stat books apart from user and system time.
    fields = [int(x) for x in line.split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])

def steal_ticks(line):
    """Ticks the hypervisor ran something else on this machine's virtual CPUs (/proc/stat's
    eighth field), which cpu_ticks counts as busy."""
    fields = [int(x) for x in line.split()[1:]]
    return fields[7] if len(fields) > 7 else 0

def seconds_of(text):
    """Seconds of a time as the shell's `times` prints it: 1m2.5s."""
    minutes, seconds = text.rstrip("s").split("m")
    return int(minutes) * 60 + float(seconds)

def half_iqr(values):
    """Half the interquartile range of `values`; None for fewer than four."""
    ordered = sorted(values)
    if len(ordered) < 4:
        return None
    quarter = len(ordered) // 4
    return (ordered[-1 - quarter] - ordered[quarter]) / 2


def peer_names(peers, backend):
    """The peers measured beside `backend`'s cells, in the order first met."""
    names = []
    for key, by_peer in peers.items():
        if key[0] == backend:
            for name in by_peer:
                if name not in names:
                    names.append(name)
    return names

def peer_target(peer_name, backend, compared, rows="row", target=True):
    """The targets line "at least as fast as PEER on every ROW" over the cells both ran; with
    `target` false, the line of a peer shown for comparison only (its last column says so)."""
    def ops(side):
        return (side or {}).get("ops_per_sec")
    pairs = [(ops(cell.get("adapter")), ops(peer["data"].get("peer_side"))) for _, cell, peer in compared]
    pairs = [(a, p) for a, p in pairs if a and p]
    wins = [1 for a, p in pairs if a >= p]
    spread = (f"adapter/peer from {min(a / p for a, p in pairs):.2f} to {max(a / p for a, p in pairs):.2f}"
              if pairs else "no figures")
    met = ("yes" if pairs and len(wins) == len(compared) else "no") if target else "shown for comparison"
    return (f"| at least as fast as {peer_name} on every {rows} ({backend}) | faster or equal on {len(wins)} of "
            f"{len(compared)} rows; {spread} | {met} |")

# The peers a backend is held to, and on which of its rows: (backend, peer) -> (the rows, as
# the targets line names them, and the test of a cell's key (backend, workload, size,
# concurrency)). Every other peer's line is shown for comparison only.
PEER_TARGETS = {
    ("memory", "cached-memory"): ("get and get-miss row", lambda key: key[1] in ("get", "get-miss")),
    ("redis", "fred"): ("row at c=16 and c=128", lambda key: key[3] in (16, 128)),
    ("redis", "opendal-redis"): ("row at c=16 and c=128", lambda key: key[3] in (16, 128)),
    ("memcached", "async-memcached"): ("get, get-miss and set row", lambda key: key[1] in ("get", "get-miss", "set")),
    ("memcached", "opendal-memcached"): ("get, get-miss and set row",
                                         lambda key: key[1] in ("get", "get-miss", "set")),
}

def alternated(rows):
    """The alternating-round measurements of a run by (backend, workload, size, concurrency):
    scripts/bench-engines' rows (kind "engine", the in-memory backend) and the network
    backends' rows (kind "alternation"); each maps to its `sides`, the first the adapter."""
    found = {}
    for row in rows:
        data = row.get("data") or {}
        if row.get("kind") == "engine":
            key = ("memory", data.get("workload"), data.get("value_size"), data.get("concurrency"))
        elif row.get("kind") == "alternation":
            key = (row["backend"], row["workload"], row["size"], row["concurrency"])
        else:
            continue
        if data.get("sides"):
            found[key] = data["sides"]
    return found

def alternation_target(alternations, backend, peer_name, rows_named, wanted):
    """The targets line "at least as fast as PEER on every ROW", from the alternating rounds
    of one process: per row, the median of the per-round ratios of the adapter to the peer;
    None when the run has no such rows."""
    ratios = []
    for key, sides in sorted(alternations.items()):
        if key[0] != backend or not wanted(key):
            continue
        side = next((s for s in sides if s.get("name") == peer_name), None)
        if side and side.get("first_over_this_median"):
            ratios.append(side["first_over_this_median"])
    if not ratios:
        return None
    wins = sum(1 for r in ratios if r >= 1.0)
    return (f"| at least as fast as {peer_name} on every {rows_named} ({backend}), in alternating rounds of one "
            f"process | faster or equal on {wins} of {len(ratios)} rows; median adapter/peer per row from "
            f"{min(ratios):.2f} to {max(ratios):.2f} | {'yes' if wins == len(ratios) else 'no'} |")

def alternation_section(alternations, backend):
    """Lines of a network backend's table against its peers in alternating rounds (rows of
    kind "alternation"); none when the run has no such rows."""
    keys = sorted((k for k in alternations if k[0] == backend and backend != "memory"),
                  key=lambda k: (["get", "get-miss", "set", "mix", "get-many"].index(k[1]), k[2], k[3]))
    if not keys:
        return []
    names = []
    for key in keys:
        for side in alternations[key][1:]:
            if side["name"] not in names:
                names.append(side["name"])
    out = [f"### {backend}: the adapter and its peers in alternating rounds", "",
           "The adapter (`cache_url::connect`, as applications connect) and each peer in one process, on the same "
           "server, in alternating rounds (`bench-peers --alternate`, twelve rounds of 0.25 s each), each on keys of "
           "its own: drift of the machine falls on all of them alike, which it does not on the peer columns above "
           "(processes of their own, run one after the other). Each cell: the median over the rounds of the "
           "engine's operations per second, and below it, in parentheses, the median of the per-round ratio of the "
           "adapter to it (above 1.00: the adapter was faster); \"-\" where a peer does not run that row.", "",
           "| workload | value | conc. | adapter ops/s | " + " | ".join(f"`{n}`" for n in names) + " |",
           "|---|---:|---:|---:|" + "---:|" * len(names)]
    for key in keys:
        sides = {side["name"]: side for side in alternations[key]}
        first = alternations[key][0]
        cells = []
        for name in names:
            side = sides.get(name)
            cells.append(f"{fmt_rate(side.get('ops_per_sec_median'))} ({fmt_ratio(side.get('first_over_this_median'))})"
                         if side else "-")
        out.append(f"| {key[1]} | {key[2]} B | {key[3]} | {fmt_rate(first.get('ops_per_sec_median'))} | " +
                   " | ".join(cells) + " |")
    out.append("")
    return out

def memcached_targets(cells, alternations=None):
    """The targets lines of the multiplexed memcached path: GET 100 B at c=128 against the raw
    pooled client (median of the per-round ratios) and against the Redis adapter, read from
    their alternating rounds in one process (backend "memcached+redis") when the run has
    them, else from the two cells, minutes apart."""
    out = []
    mc = cells.get(("memcached", "get", 100, 128)) or {}
    rd = cells.get(("redis", "get", 100, 128)) or {}
    mc_ops = (mc.get("adapter") or {}).get("ops_per_sec")
    raw_ops = (mc.get("raw") or {}).get("ops_per_sec")
    if mc_ops and raw_ops and "ratio" in mc:
        x = mc["ratio"]["throughput_median"]
        out.append(f"| memcached GET 100 B at c=128 >= 3x the raw pooled client (16 connections) | {mc_ops:,.0f}/s vs "
                   f"{raw_ops:,.0f}/s; median of the per-round ratios {x:.2f}x | {'yes' if x >= 3 else 'no'} |")
    sides = (alternations or {}).get(("memcached+redis", "get", 100, 128)) or []
    redis_side = next((side for side in sides[1:] if side.get("name", "").startswith("adapter@")), None)
    rd_ops = (rd.get("adapter") or {}).get("ops_per_sec")
    if redis_side and redis_side.get("first_over_this_median"):
        x = redis_side["first_over_this_median"]
        apart = f"; in the cells, minutes apart: {mc_ops / rd_ops:.2f}x" if mc_ops and rd_ops else ""
        out.append(f"| memcached GET 100 B at c=128 >= 0.8x the Redis adapter (default mode) | "
                   f"{fmt_rate(sides[0].get('ops_per_sec_median'))}/s vs {fmt_rate(redis_side.get('ops_per_sec_median'))}/s "
                   f"in alternating rounds of one process, median of the per-round ratios {x:.2f}x{apart} | "
                   f"{'yes' if x >= 0.8 else 'no'} |")
    elif mc_ops and rd_ops:
        x = mc_ops / rd_ops
        out.append(f"| memcached GET 100 B at c=128 >= 0.8x the Redis adapter (default mode) | {mc_ops:,.0f}/s vs "
                   f"{rd_ops:,.0f}/s: {x:.2f}x | {'yes' if x >= 0.8 else 'no'} |")
    return out

# No row's adapter/raw ratio may fall below this, whatever the median of a backend's rows.
FLOOR = 0.85

ENGINE_PEERS = ["moka-future", "moka-sync", "quick-cache", "cached-memory"]

def engine_section(cells, peers, footprint):
    """Lines of "Choosing the in-memory engine": the adapter on quick_cache against moka's
    caches with the same budget and expiry, plain quick_cache and cached's store, on the
    reads and writes; none when the run has no such rows."""
    keys = sorted((k for k in cells if k[0] == "memory" and k[1] in ("get", "get-miss", "set")
                   and any(name in peers.get(k, {}) for name in ENGINE_PEERS[:2])),
                  key=lambda k: (["get", "get-miss", "set"].index(k[1]), k[2], k[3]))
    if not keys:
        return []
    out = ["## Choosing the in-memory engine", "",
           "The in-memory backend ran on moka's future cache until 2026-12-02; it now runs on quick_cache, with "
           "each entry's deadline stored beside its value and checked on read. The candidates below went through "
           "the same load loop, right after each cell: moka's future and sync caches with the byte budget, LRU "
           "policy and per-entry expiry (`Expiry`) the backend needs, quick_cache as its documentation shows (no "
           "deadline, no trait object) and `cached`'s sharded store (no TTL, no byte budget). Operations per "
           "second; the adapter column is the backend through `Arc<dyn Cache>`. Each runs in a process of its "
           "own after the cell, so drift of the machine between them is not cancelled: "
           "[docs/bench/engines.md](docs/bench/engines.md) (`scripts/bench-engines`) runs them all in one "
           "process, in alternating rounds, and is the comparison to read on a busy machine.", "",
           "| workload | value | conc. | adapter (quick_cache) | " + " | ".join(f"`{n}`" for n in ENGINE_PEERS) +
           " | adapter / best moka | adapter / `cached-memory` |",
           "|---|---:|---:|---:|" + "---:|" * len(ENGINE_PEERS) + "---:|---:|"]
    for key in keys:
        adapter = (cells[key].get("adapter") or {}).get("ops_per_sec")
        rates = {name: ((peers.get(key, {}).get(name) or {}).get("data", {}).get("peer_side") or {}).get("ops_per_sec")
                 for name in ENGINE_PEERS}
        mokas = [rates[n] for n in ENGINE_PEERS[:2] if rates[n]]
        best_moka = adapter / max(mokas) if adapter and mokas else None
        versus_cached = adapter / rates["cached-memory"] if adapter and rates["cached-memory"] else None
        out.append(f"| {key[1]} | {key[2]} B | {key[3]} | {fmt_rate(adapter)} | " +
                   " | ".join(fmt_rate(rates[n]) for n in ENGINE_PEERS) +
                   f" | {fmt_ratio(best_moka)} | {fmt_ratio(versus_cached)} |")
    out.append("")
    per_entry = (((footprint or {}).get("data") or {}).get("adapter") or {}).get("bytes_per_entry")
    if per_entry:
        out.append(f"Memory per entry at {footprint['data']['entries']:,} entries: {per_entry:.0f} bytes on "
                   "quick_cache (\"Memory per entry\" below), against 546 bytes on moka's future cache in the "
                   "run of 2026-12-01 (same command).")
        out.append("")
    return out

def render(rows, commands, env, sh=sh, lock_versions=lock_versions):
    """The report's lines, from the result rows, the commands run and the run's figures
    in `env` (QUICK, LOAD_BEFORE, ... as scripts/bench sets them)."""
    rows = list(rows)
    quick = env["QUICK"] == "1"
    load_before = env["LOAD_BEFORE"]
    load_after = env["LOAD_AFTER"]
    leak_duration_text = env["LEAK_DURATION"]
    tick = int(env["CLK_TCK"])
    busy_before, total_before = cpu_ticks(env["CPU_BEFORE"])
    busy_after, total_after = cpu_ticks(env["CPU_AFTER"])
    busy_s = (busy_after - busy_before) / tick
    wall_cpu_s = (total_after - total_before) / tick
    own_s = (int(env["OWN_TICKS"]) / tick + sum(seconds_of(x) for x in env["CHILDREN_TIMES"].split())
             - sum(seconds_of(x) for x in env["CHILDREN_BEFORE"].split()))
    steal_s = (steal_ticks(env["CPU_AFTER"]) - steal_ticks(env["CPU_BEFORE"])) / tick
    foreign_share = max(0.0, busy_s - own_s - steal_s) / wall_cpu_s if wall_cpu_s else 0.0
    steal_share = steal_s / wall_cpu_s if wall_cpu_s else 0.0
    busy_reasons = []
    if float(load_before.split()[0]) >= 1.0:
        busy_reasons.append("the 1-minute load average was at or above 1.0 when the run started")
    if foreign_share > 0.10:
        busy_reasons.append(f"other processes used {foreign_share * 100:.0f} % of the CPU while it ran")
    if steal_share > 0.10:
        busy_reasons.append(f"the hypervisor took {steal_share * 100:.0f} % of the virtual CPUs' time (steal)")
    busy = bool(busy_reasons)

    cells = {}
    peers = {}
    errors = []
    for row in rows:
        if row["kind"] == "cell":
            key = (row["backend"], row["workload"], row["size"], row["concurrency"])
            cells[key] = row["data"]
            if row["exit"] != 0:
                errors.append(f"{key}: exit {row['exit']}")
        elif row["kind"] == "peer":
            key = (row["backend"], row["workload"], row["size"], row["concurrency"])
            peers.setdefault(key, {})[row["peer"]] = row
            if row["exit"] != 0:
                errors.append(f"peer {row['peer']} {key[1:]}: exit {row['exit']}")
    bench = [row for row in rows if row["kind"] == "redis-benchmark"]
    beside = [row for row in rows if row["kind"] == "redis-benchmark-beside"]
    footprint = next((row for row in rows if row["kind"] == "footprint"), None)
    leaks = [row for row in rows if row["kind"] == "leak"]
    alternations = alternated(rows)

    backends = ["memory", "redis", "redis-pooled", "memcached"]
    names = {"memory": "memory (quick_cache)", "redis": "redis, default mode (one multiplexed ConnectionManager)",
             "redis-pooled": "redis, pooled mode (deadpool-redis, max 16)", "memcached": "memcached (multiplexed connections, 2 per server)"}
    raw_names = {"memory": "quick_cache sync::Cache of CompactString (keys of up to 24 bytes inline, as the backend keeps them) "
                           "to a value and its deadline, with the backend's byte "
                           "budget, weigher and hasher (quick_cache's own, foldhash), the deadline checked on every read as the backend does "
                           "(quick_cache has no clock: every quick_cache user with a TTL per entry needs that check)",
                 "redis": "redis ConnectionManager, same timeouts", "redis-pooled": "deadpool-redis pool, max 16, same timeouts",
                 "memcached": "memcache::exp::AsyncMetaClient, pooled, 16 connections per server, same timeouts"}
    targets = {"memory": 0.90, "redis": 0.95, "redis-pooled": 0.95, "memcached": 0.95, "redis-cluster": 0.95}

    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Generated by `scripts/bench`" + (" --quick (a smoke run: too short to quote)" if quick else "") +
      f" on {env['STARTED']} in {env['ELAPSED']} s. Every figure below was measured on the machine described here, "
      "in one run; regenerate them with `scripts/bench` (it starts its own redis-server, a 3-master Redis Cluster and "
      "memcached on free 127.0.0.1 ports and stops them afterwards).")
    w("")
    w("Read them as relative figures: client, server and load generator share one small machine, so the absolute "
      "throughput is the machine's, not the backends'. What the adapter costs is the ratio to the raw client, "
      "measured in alternating rounds (adapter, raw, raw, adapter, ...; twelve rounds of 0.25 s per side) so that "
      "noise falls on both alike. The "
      "\"ratio ops/s\" columns and the targets use the median of the per-round ratios (each round runs the two "
      "sides back to back), which a burst of other work hitting one round moves less than the ratio of the totals; "
      "the ops/s and p99 columns are the totals of all rounds.")
    w("")
    w("## Machine and versions")
    w("")
    cpu = next((line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines() if line.startswith("Model name")), "unknown")
    w(f"- CPU: {cpu}, {sh('nproc')} cores available")
    w(f"- Memory: {sh('free -h').splitlines()[1].split()[1]}; kernel {sh('uname -r')}")
    w(f"- Load average (1, 5, 15 min) before the run: {load_before}; after: {load_after} (the run itself keeps both cores busy)")
    w(f"- CPU used by processes other than this run's, while it ran: {foreign_share * 100:.0f} % of the machine "
      "(all CPU time of the machine, less that of the servers, of every process this run started and the steal)")
    w(f"- Steal: the hypervisor ran something else on this machine's virtual CPUs for {steal_share * 100:.0f} % "
      "of their time during the run (`/proc/stat`); a stall of either side of a round shows as noise in the ratios")
    if busy:
        w(f"- **The machine was not quiet: {'; '.join(busy_reasons)}. The figures are noisier than on an idle machine.**")
    else:
        w("- The machine was quiet: load average below 1.0 at the start, no other process used more than 10 % of the CPU "
          "and the steal stayed below 10 % during the run.")
    w(f"- {sh('rustc --version')}; {sh('redis-server --version').split(' sha=')[0]}; {sh('memcached -V')}; {sh('redis-benchmark --version')}")
    w(f"- Crates (Cargo.lock): {lock_versions('Cargo.lock', ['tokio', 'redis', 'deadpool-redis', 'memcache', 'quick_cache', 'hdrhistogram'])}")
    w(f"- Peers (benches/peers/Cargo.lock): {lock_versions('benches/peers/Cargo.lock', ['cached', 'quick_cache', 'moka', 'fred', 'opendal', 'async-memcached', 'redis'])}")
    w("- Build: `cargo build --release`; servers: redis-server with persistence off, a Redis Cluster of 3 such "
      "redis-server masters without replicas, memcached with 1 GiB of item memory, all on 127.0.0.1")
    w("- Runtime: the network rows run load generator and client on one Tokio thread (`--threads 1`), leaving the "
      "other core to the server, as redis-benchmark (one event loop) does; the in-memory rows, which have no server, "
      "use Tokio's default of a thread per core. Peers run with the same setting as the rows they sit in.")
    w("")

    charts = [name for name in env.get("CHARTS", "").split() if name]
    if charts:
        w("## Charts")
        w("")
        w("Drawn by `bench-charts` (`crates/cache-charts`) from this run's results: throughput by concurrency "
          "(log scales) per backend, for the adapter, its raw client and the peers; then latency percentiles of "
          "`get` (100 B, 16 callers). The tables below hold the same figures.")
        w("")
        for path in charts:
            title = os.path.splitext(os.path.basename(path))[0].replace("-", " ")
            w(f"![{title}]({path})")
            w("")

    # Summary against the targets.
    w("## Against the targets")
    w("")
    def ratio_rows(backend):
        found = []
        for (b, workload, size, concurrency), data in sorted(cells.items()):
            if b == backend and "ratio" in data:
                found.append(((workload, size, concurrency), data["ratio"]["throughput_median"]))
        return found

    def round_spread(backend):
        """The median, over the rows of a backend, of half the interquartile range of their
        per-round ratios: how far one round's ratio typically strays from the row's."""
        spreads = sorted(x for x in (half_iqr(data["ratio"].get("throughput_rounds", []))
                                     for (b, *_), data in cells.items() if b == backend and "ratio" in data)
                         if x is not None)
        return spreads[len(spreads) // 2] if spreads else None

    w("| target | measured | met |")
    w("|---|---|---|")
    for backend in backends + ["redis-cluster"]:
        ratios = ratio_rows(backend)
        if not ratios:
            continue
        low = min(ratios, key=lambda item: item[1])
        below = [item for item in ratios if item[1] < targets[backend]]
        ordered = sorted(r for _, r in ratios)
        median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
        spread = round_spread(backend)
        spread_text = f"; per-round ratios stray ±{spread:.2f} from their row's median (median half-IQR)" if spread is not None else ""
        met = median >= targets[backend] and low[1] >= FLOOR
        w(f"| adapter/raw throughput ({backend}): median of the rows >= {targets[backend]:.2f}, no row below "
          f"{FLOOR:.2f} | median {median:.3f}, lowest {low[1]:.3f} ({low[0][0]}, {low[0][1]} B, c={low[0][2]}); "
          f"{len(below)} of {len(ratios)} rows below {targets[backend]:.2f}{spread_text} | {'yes' if met else 'no'} |")
    for backend in backends:
        for size in sorted({k[2] for k in cells}):
            get = cells.get((backend, "get", size, 1))
            many = cells.get((backend, "get-many", size, 1))
            if get and many and "adapter" in get and "adapter" in many:
                speedup = many["adapter"]["keys_per_sec"] / get["adapter"]["ops_per_sec"]
                batch = many.get("batch", 100)
                w(f"| get_many({batch}) >= 20x the keys/s of sequential gets, c=1, {backend}, {size} B | "
                  f"{many['adapter']['keys_per_sec']:,.0f} keys/s vs {get['adapter']['ops_per_sec']:,.0f} gets/s: "
                  f"{speedup:.1f}x | {'yes' if speedup >= 20 else 'no'} |")
    for backend in ["redis", "redis-pooled"]:
        for size in sorted({k[2] for k in cells}):
            cell = cells.get((backend, "get", size, 128))
            # redis-benchmark right after the default-mode GET cell when there is one, so that
            # both figures are of the same minute.
            source = beside or bench
            p1 = next((b for b in source if b["size"] == size and b["concurrency"] == 128 and b["pipeline"] == 1 and b["test"] == "GET"), None)
            p16 = next((b for b in source if b["size"] == size and b["concurrency"] == 128 and b["pipeline"] == 16 and b["test"] == "GET"), None)
            if cell and p1 and "adapter" in cell:
                x = cell["adapter"]["ops_per_sec"] / p1["rps"]
                ceiling = f"; ceiling `-P 16`: {p16['rps']:,.0f}/s" if p16 else ""
                w(f"| {backend} GET at c=128 >= 5x redis-benchmark -P 1, {size} B | {cell['adapter']['ops_per_sec']:,.0f}/s vs "
                  f"{p1['rps']:,.0f}/s: {x:.2f}x{ceiling} | {'yes' if x >= 5 else 'no'} |")
    for line in memcached_targets(cells, alternations):
        w(line)
    # A peer target is read from the alternating rounds when the run has them: the peer
    # columns of the tables come from processes of their own, run after the cell, between
    # which the drift of a shared machine is not cancelled; those lines are then shown for
    # comparison only.
    others = []
    for backend in backends:
        for peer_name in peer_names(peers, backend):
            rows_named, wanted = PEER_TARGETS.get((backend, peer_name), ("row", None))
            compared = [(key, cells[key], by_peer[peer_name]) for key, by_peer in sorted(peers.items())
                        if key[0] == backend and key in cells and peer_name in by_peer
                        and (wanted is None or wanted(key))]
            rounds_line = wanted and alternation_target(alternations, backend, peer_name, rows_named, wanted)
            if rounds_line:
                w(rounds_line)
            if wanted is None or rounds_line:
                others.append(peer_target(peer_name, backend, compared, rows_named, target=False))
            else:
                w(peer_target(peer_name, backend, compared, rows_named))
    for line in others:
        w(line)
    w("")
    if errors:
        w("Runs that reported errors (exit status 1 means some operations failed; see the JSON): " + "; ".join(errors))
        w("")

    # Per-backend tables.
    for backend in backends:
        keys = sorted((k for k in cells if k[0] == backend), key=lambda k: (["get", "get-miss", "set", "mix", "get-many"].index(k[1]), k[2], k[3]))
        if not keys:
            continue
        w(f"## {names[backend]}")
        w("")
        w(f"Raw baseline: {raw_names[backend]}. The 100 B rows use 10,000 keys, the 16 KiB rows 1,000 (so that "
          "populating them stays quick): reads of the smaller key set hit the CPU caches more often, which is why some "
          "16 KiB rows of the in-memory backend are faster than their 100 B rows.")
        shown_peers = peer_names(peers, backend)
        w("")
        head = "| workload | value | conc. | adapter ops/s | adapter p99 µs | raw ops/s | raw p99 µs | ratio ops/s | ratio p99 |"
        rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for peer_name in shown_peers:
            head += f" `{peer_name}` ops/s (p99 µs) |"
            rule += "---:|"
        w(head)
        w(rule)
        for key in keys:
            data = cells[key]
            adapter, raw, ratio = data.get("adapter"), data.get("raw"), data.get("ratio")
            workload = key[1] + (f" ({data.get('batch', 100)} keys)" if key[1] == "get-many" else "")
            def rate(side):
                if not side:
                    return "-"
                text = fmt_rate(side["ops_per_sec"])
                if key[1] == "get-many":
                    text += f" ({side['keys_per_sec'] / 1e6:.2f} M keys/s)"
                if side.get("errors"):
                    text += f" ({side['errors']} errors)"
                return text
            line = (f"| {workload} | {key[2]} B | {key[3]} | {rate(adapter)} | {fmt_us(adapter and adapter['p99_us'])} | "
                    f"{rate(raw)} | {fmt_us(raw and raw['p99_us'])} | {fmt_ratio(ratio and ratio['throughput_median'])} | "
                    f"{fmt_ratio(ratio and ratio['p99'])} |")
            for peer_name in shown_peers:
                peer = peers.get(key, {}).get(peer_name, {}).get("data", {}).get("peer_side")
                line += f" {rate(peer)} ({fmt_us(peer and peer['p99_us'])}) |" if peer else " - |"
            w(line)
        w("")
        if shown_peers:
            listed = ", ".join(f"`{name}`" for name in shown_peers)
            w(f"Peers: {listed} from `benches/peers` (what each is: its README), the same load loop, each run "
              "right after the cell it sits in; \"-\" where a peer does not run that row.")
            w("")
        if backend == "memory":
            out.extend(engine_section(cells, peers, footprint))
        out.extend(alternation_section(alternations, backend))

    cluster_keys = sorted((k for k in cells if k[0] == "redis-cluster"),
                          key=lambda k: (["get", "get-miss", "set", "mix", "get-many"].index(k[1]), k[2], k[3]))
    if cluster_keys:
        w("## redis cluster (3 masters)")
        w("")
        w("Three redis-server masters in cluster mode, persistence off, joined by `redis-cli --cluster create "
          "--cluster-replicas 0`; the `redis+cluster://` URL names all three. No replicas: on 2 cores a replica would "
          "only take CPU from the masters to copy their writes. Raw baseline: redis's async `ClusterConnection` "
          "(`ClusterClient::builder`) with the backend's connect and response timeouts, waits between tries and "
          "per-operation deadline, every command to a master. On get-many (and the `UNLINK`s that remove the keys) both "
          "sides send one command per slot: the adapter pipelines them per master, from its own map of the slots; the raw "
          "client splits the `MGET` by slot itself and sends every part on its own. The single-node columns are the "
          "redis default-mode adapter row of the same workload, value size and concurrency in this run (\"-\" where "
          "the single-node matrix has no such row); cluster/single is the adapter's throughput on the cluster over it.")
        w("")
        w("| workload | value | conc. | adapter ops/s | adapter p99 µs | raw ops/s | raw p99 µs | ratio ops/s | ratio p99 | "
          "single-node ops/s | single-node p99 µs | cluster/single ops/s |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in cluster_keys:
            data = cells[key]
            adapter, raw, ratio = data.get("adapter"), data.get("raw"), data.get("ratio")
            single = cells.get(("redis",) + key[1:], {}).get("adapter")
            workload = key[1] + (f" ({data.get('batch', 100)} keys)" if key[1] == "get-many" else "")
            def rate(side):
                if not side:
                    return "-"
                text = fmt_rate(side["ops_per_sec"])
                if key[1] == "get-many":
                    text += f" ({side['keys_per_sec'] / 1e6:.2f} M keys/s)"
                if side.get("errors"):
                    text += f" ({side['errors']} errors)"
                return text
            versus = adapter["ops_per_sec"] / single["ops_per_sec"] if adapter and single and single["ops_per_sec"] else None
            w(f"| {workload} | {key[2]} B | {key[3]} | {rate(adapter)} | {fmt_us(adapter and adapter['p99_us'])} | "
              f"{rate(raw)} | {fmt_us(raw and raw['p99_us'])} | {fmt_ratio(ratio and ratio['throughput_median'])} | "
              f"{fmt_ratio(ratio and ratio['p99'])} | {rate(single)} | {fmt_us(single and single['p99_us'])} | "
              f"{fmt_ratio(versus)} |")
        w("")

    w("## redis-benchmark on the same server")
    w("")
    w("Same value size and client count, `-r 10000` random keys. `-P 1` sends one command per round trip per "
      "client (the unpipelined figure); `-P 16` pipelines 16 and is the ceiling of this server on this machine.")
    w("")
    w("| value | clients | pipeline | GET/s | GET p99 ms | SET/s | SET p99 ms |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    combos = sorted({(b["size"], b["concurrency"], b["pipeline"]) for b in bench})
    for size, concurrency, pipeline in combos:
        get = next((b for b in bench if (b["size"], b["concurrency"], b["pipeline"], b["test"]) == (size, concurrency, pipeline, "GET")), None)
        set_ = next((b for b in bench if (b["size"], b["concurrency"], b["pipeline"], b["test"]) == (size, concurrency, pipeline, "SET")), None)
        w(f"| {size} B | {concurrency} | {pipeline} | {fmt_rate(get and get['rps'])} | {get and get['p99_ms']} | "
          f"{fmt_rate(set_ and set_['rps'])} | {set_ and set_['p99_ms']} |")
    w("")

    if footprint and footprint.get("data"):
        data = footprint["data"]
        w("## Memory per entry (in-memory backend)")
        w("")
        w(f"Resident memory (VmRSS) of a process that stores {data['entries']:,} entries of {data['value_size']} bytes under "
          f"{data['key_len']}-byte keys, read before the first insert and after the last; "
          "each side in a process of its own. The adapter's side is `MemoryCache` on quick_cache; its raw side, "
          "quick_cache with the same settings used directly.")
        w("")
        w("| | live entries | RSS before KiB | RSS after KiB | bytes per entry | of which key + value |")
        w("|---|---:|---:|---:|---:|---:|")
        for side in [data.get("adapter"), data.get("raw")]:
            if side:
                w(f"| {side['side']} | {side['live_entries']:,} | {side['rss_before_kib']:,} | {side['rss_after_kib']:,} | "
                  f"{side['bytes_per_entry']:.0f} | {data['key_len'] + data['value_size']} |")
        if data.get("ratio"):
            w("")
            w(f"Adapter/raw: {data['ratio']:.2f}.")
        w("")

    if leaks:
        w("## Leak runs")
        w("")
        w(f"{leak_duration_text} of the mix workload at concurrency 128 per backend, sampling the bench process's resident memory "
          "and the server's connection count (redis `INFO clients` connected_clients, memcached `stats` curr_connections; "
          "the sampling connection itself counts as one) at the start and then periodically.")
        w("")
        w("| backend | ops | errors | RSS KiB, samples in order | server connections, samples in order |")
        w("|---|---:|---:|---|---|")
        for row in leaks:
            data = row["data"]
            samples = data.get("samples", [])
            rss = ", ".join(f"{s['rss_kib']:,}" for s in samples)
            conns = ", ".join("-" if s.get("server_connections") is None else str(s["server_connections"]) for s in samples)
            adapter = data.get("adapter", {})
            w(f"| {row['backend']} | {adapter.get('ops', 0):,} | {adapter.get('errors', '-')} | {rss} | {conns} |")
        w("")

    w("## What limits the figures")
    w("")
    for note in [
        "**One small machine.** Load generator, client library and server share 2 cores. From concurrency 16 on, the "
        "network rows are CPU-bound: every microsecond the client spends is taken from the server, so small per-call "
        "costs show in throughput, and run-to-run noise of several percent is normal. The ratio columns are the figures "
        "to read; rows within a few percent of 1.00 are within that noise.",
        "**What the adapter adds per call.** Every call goes through `Arc<dyn Cache>`: `async_trait` boxes the "
        "backend's future (one allocation; the `Arc` forwarding impl hands that future on without another), and the "
        "key is checked. The memcached backend also builds its server key (one allocation, shared with the client's "
        "operation) and bounds the whole call by its timeout instead of the client's per-exchange timer. For the "
        "in-memory backend, whose calls take a fraction of a microsecond, the boxed future is most of the difference "
        "to raw quick_cache; for the network backends it is small next to a round trip, and shows mostly at concurrency 128, "
        "where the client is CPU-bound.",
        "**Ratios against their targets.** A row's ratio is the median of twelve rounds; the targets table gives how "
        "far single rounds stray from it. The adapter's remaining cost per call is the one described above; rows a few "
        "hundredths under a target, with neighbours of the same workload above it, are within that spread rather than "
        "a cost of their own.",
        "**get_many against 20x.** The in-memory backend has no round trip to save: its get_many is a loop of table "
        "lookups, so the target (written for network backends) cannot apply to it. On the network backends a get_many "
        "of 100 values of 16 KiB moves 1.6 MB in one answer: those rows are bound by copying and bandwidth, not by "
        "round trips, and only the 100 B rows test what batching saves. On memcached the raw meta client's batch of "
        "100 `mg` commands is about as slow as the adapter's (the get-many rows' ratio), so the limit there is the "
        "client's batch exchange; the peer, whose multi-get is one `get k1 k2 ...` command, reads the same batch "
        "faster.",
        "**redis GET at 16 KiB against 5x redis-benchmark.** 128 callers reading 16 KiB values move most of a GB/s "
        "through the connection: sharing one pipelined connection multiplies the 100 B figure, but cannot multiply "
        "bandwidth, and redis-benchmark itself gains little from `-P 16` at that size (its table). The pooled mode "
        "does not pipeline by design, so the 5x target, which is about pipelining, is not one it can meet.",
        "**redis pooled mode** checks a connection out of deadpool-redis for every operation, and each checkout sends a "
        "`PING` first: two round trips per operation, against one for the multiplexed default, which also pipelines "
        "the commands of concurrent callers on its one connection. That pipelining is why the default mode beats "
        "redis-benchmark's unpipelined (`-P 1`) figure at the same client count; `-P 16` shows what the server can do "
        "when every client pipelines.",
        "**memcached**: the adapter runs on its own multiplexed connections (2 per server: the requests of every "
        "caller written back to back, the answers matched in order), built on `memcache` 0.21's meta pieces; the raw "
        "baseline is that crate's pooled meta client with 16 connections, which checks a connection out of its pool "
        "(behind a semaphore) for every call, one request per round trip. That difference, not a cost of the adapter, "
        "is why the adapter/raw ratio passes 1 from 16 callers on. The peer, Shopify's `async-memcached`, is driven "
        "through a queue of 16 connections, each used by one caller at a time. At one caller, a row's answer takes "
        "tens of microseconds and a stall of a virtual CPU (steal) a millisecond or more: those rows swing the most. "
        "They also depend on where memcached's thread for each connection runs: waking a thread on the other virtual "
        "CPU costs about 100 µs on this machine, on the same one about 15 µs, and each connection lands on either; "
        "at one caller the adapter's two task hops (writer, reader) cost it about a tenth against a client that "
        "reads its own answer (section \"memcached: multiplexed connection\"). From 16 callers on, the "
        "client's thread is the limit, and memcached's costs about 12 % more CPU per call than Redis's.",
        "**Redis Cluster on one machine.** The three masters, the client and the load generator share the same 2 "
        "cores, so the cluster adds no CPU here: its rows show what routing by slot costs the client (finding each "
        "key's node, one connection per node, answers put back in order, a get-many split into one command per slot), "
        "not what spreading the keys over machines gains.",
        "**Peers** in the backends' tables run in a process of their own, right after the cell they sit in, not "
        "interleaved with it in rounds: drift of this shared machine between the two is not cancelled as in the "
        "adapter/raw ratio, and the same command's throughput was seen to move by tens of percent from one minute to "
        "the next, so only large differences there are meaningful. The peer targets are read from the alternating "
        "rounds of one process instead (docs/bench/engines.md for the in-memory engines, the tables \"in "
        "alternating rounds\" for Redis and memcached) when the run has them. `cached-memory` is a sharded LRU map under locks, sized in entries, "
        "without per-entry TTLs or a byte budget; `quick-cache` is the in-memory backend's own table used as its "
        "documentation shows, without the deadline check or the trait object; `moka-sync` and `moka-future` are "
        "moka with the byte budget and per-entry expiry the backend needs, the engines it was measured against "
        "(run on get, get-miss and set only). `cached-redis` answers `set` with the previous value (a `GET` "
        "pipelined with the `SET`), encodes values as MessagePack and has no bulk read, so its get-many is one "
        "round trip per key; `opendal-redis` has no bulk read either. `fred` encodes a write from the caller's "
        "buffer and parses a reply into slices of its read buffer, where redis-rs, under the Redis backend and its "
        "raw baseline alike, copies a value three times on the way out (into the command, into its packed form, into the connection's write buffer) and once per value on the way in: the rows of 16 "
        "KiB values `fred` leads are those copies (section \"redis: values of 16 KiB beside fred\"). "
        "`opendal-memcached` writes each request in "
        "many small writes without `TCP_NODELAY`, so Nagle's algorithm and delayed ACKs hold every request for "
        "tens of milliseconds; it runs on the get-miss and set rows only (writing 10,000 keys first would take "
        "most of a minute per row).",
    ]:
        w("- " + note)
    w("")
    w("## Running it against your own deployment")
    w("")
    w("`cachectl bench URL` is the load generator behind these tables; point it at your own server. It writes only "
      "keys under a prefix of its own (`cachectl-bench:<pid>-<time>:`) and removes them at the end, also when "
      "stopped with Ctrl-C, so a live server keeps its data; it refuses a run whose keys would take more than half the "
      "memory a server has free (a full server evicts other entries), unless given `--allow-eviction`.")
    w("")
    w("```")
    w("cachectl bench redis://cache.internal:6379 --workload mix --value-size 512 --concurrency 64 --duration 30s")
    w("cachectl bench redis://cache.internal:6379 --pooled 32 --baseline raw      # adapter against deadpool-redis")
    w("cachectl bench memcache://10.0.0.5:11211 --workload get-many --batch 50 --json")
    w("cachectl bench redis+cluster://10.0.0.1:7000,10.0.0.2:7000 --workload mix --baseline raw   # adapter against the cluster client")
    w("cachectl bench memory:// --footprint 1000000 --baseline raw             # bytes per entry")
    w("cachectl bench redis://127.0.0.1:6379 --workload mix --concurrency 128 --duration 60s --sample-every 10s")
    w("```")
    w("")
    w("Workloads: `get` (keys written before the run), `get-miss`, `set`, `mix` (90 % get, 10 % set), "
      "`get-many` (`--batch` keys per call). Every run is bounded by `--duration` (default 10 s) or `--ops`; "
      "`--warmup` runs unmeasured first. Latencies come from an HDR histogram (3 significant digits) per task, "
      "merged; throughput is operations over wall time. `--baseline raw` alternates rounds (`--rounds`, ABBA order) "
      "of the adapter and of the client under it with the same settings, and prints adapter/raw for throughput and p99. "
      "On a terminal a progress line on standard error is redrawn once per second (none with `--json` or when "
      "standard error is a file or a pipe); `--json` prints one document on standard output.")
    w("")
    w("## Commands")
    w("")
    w("Every command of this run, in order, from the repository root (`$REDIS_PORT`, `$MEMCACHED_PORT` and `$CLUSTER_PORT_1` to `$CLUSTER_PORT_3` "
      "are the free ports the script picked):")
    w("")
    w("<details><summary>" + str(len(commands)) + " commands</summary>")
    w("")
    w("```")
    out.extend(commands)
    w("```")
    w("")
    w("</details>")
    w("")
    return out


def record(labels, status, document):
    """One result line: the labels of a command, its exit status and its JSON output
    (an empty object when it printed nothing)."""
    row = json.loads(labels)
    row["exit"] = int(status)
    row["data"] = json.loads(document) if document.strip() else {}
    return json.dumps(row)


def redis_benchmark(kind, size, concurrency, pipeline, csv_text):
    """One result line per test of `redis-benchmark --csv` output. The "redis-benchmark"
    rows carry their latencies; the "redis-benchmark-beside" rows (run right after a
    cell) only the rate."""
    rows = list(csv.reader(csv_text.splitlines()))
    lines = []
    for row in rows[1:]:
        data = dict(zip(rows[0], row))
        line = {"kind": kind, "size": int(size), "concurrency": int(concurrency),
                "pipeline": int(pipeline), "test": data["test"], "rps": float(data["rps"])}
        if kind == "redis-benchmark":
            line["p50_ms"] = float(data["p50_latency_ms"])
            line["p99_ms"] = float(data["p99_latency_ms"])
        lines.append(json.dumps(line))
    return lines


KEPT_MARK = "<!-- kept by scripts/bench: written by hand -->"


def kept_sections(old_text):
    """The sections of an earlier report that scripts/bench does not write: each a `## `
    heading whose next non-empty line is KEPT_MARK, up to the next `## ` heading."""
    sections, current = [], None
    lines = old_text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("## "):
            if current is not None:
                sections.append(current)
            following = next((l for l in lines[index + 1:] if l.strip()), "")
            current = [line] if following.strip() == KEPT_MARK else None
        elif current is not None:
            current.append(line)
    if current is not None:
        sections.append(current)
    return ["\n".join(section).rstrip("\n") for section in sections]


def with_kept(new_lines, old_text):
    """The new report with the kept sections of the old one put back, before
    "## What limits the figures" (or at the end)."""
    kept = kept_sections(old_text)
    if not kept:
        return new_lines
    block = []
    for section in kept:
        block.extend(section.split("\n"))
        block.append("")
    anchor = "## What limits the figures"
    if anchor in new_lines:
        at = new_lines.index(anchor)
        return new_lines[:at] + block + new_lines[at:]
    return new_lines + [""] + block


def main(argv):
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if command == "render" and len(args) == 3:
        results_path, commands_path, out_path = args
        with open(results_path) as results:
            rows = [json.loads(line) for line in results if line.strip()]
        with open(commands_path) as commands:
            lines = [line.rstrip("\n") for line in commands]
        old = ""
        if os.path.exists(out_path):
            with open(out_path) as previous:
                old = previous.read()
        with open(out_path, "w") as out:
            out.write("\n".join(with_kept(render(rows, lines, os.environ), old)))
        return 0
    if command == "record" and len(args) == 2:
        print(record(args[0], args[1], sys.stdin.read()))
        return 0
    if command == "redis-benchmark" and len(args) == 4:
        for line in redis_benchmark(*args, sys.stdin.read()):
            print(line)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
