"""Unit tests of scripts/bench_report.py on small fixture inputs.

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""
import json
import os
import tempfile
import unittest

import bench_report


def side(ops_per_sec, p99_us, keys_per_sec=None, errors=0):
    return {"ops": 1000, "ops_per_sec": ops_per_sec, "keys_per_sec": keys_per_sec or ops_per_sec,
            "p99_us": p99_us, "errors": errors}


def cell(backend, workload, size, concurrency, adapter, raw, rounds, exit_status=0):
    data = {"adapter": adapter, "raw": raw,
            "ratio": {"throughput": adapter["ops_per_sec"] / raw["ops_per_sec"],
                      "throughput_median": sorted(rounds)[len(rounds) // 2],
                      "throughput_rounds": rounds,
                      "p99": adapter["p99_us"] / raw["p99_us"]}}
    if workload == "get-many":
        data["batch"] = 100
    return {"kind": "cell", "backend": backend, "workload": workload, "size": size,
            "concurrency": concurrency, "exit": exit_status, "data": data}


ROWS = [
    cell("memory", "get", 100, 1, side(1_000_000, 1.5), side(1_100_000, 1.2), [0.95, 0.91, 0.93, 0.97]),
    cell("memory", "get-many", 100, 1, side(50_000, 30.0, keys_per_sec=5_000_000), side(52_000, 28.0),
         [0.96, 0.96]),
    cell("redis", "get", 100, 1, side(20_000, 80.0), side(21_000, 79.0), [0.90, 0.92, 0.93], exit_status=1),
    {"kind": "peer", "backend": "memory", "peer": "cached-memory", "workload": "get", "size": 100,
     "concurrency": 1, "exit": 0, "data": {"peer_side": side(2_000_000, 0.9)}},
    {"kind": "peer", "backend": "memory", "peer": "quick-cache", "workload": "get", "size": 100,
     "concurrency": 1, "exit": 0, "data": {"peer_side": side(900_000, 1.1)}},
    {"kind": "peer", "backend": "memory", "peer": "moka-future", "workload": "get", "size": 100,
     "concurrency": 1, "exit": 0, "data": {"peer_side": side(400_000, 20.0)}},
    {"kind": "peer", "backend": "memory", "peer": "moka-sync", "workload": "get", "size": 100,
     "concurrency": 1, "exit": 0, "data": {"peer_side": side(500_000, 9.0)}},
    {"kind": "peer", "backend": "memory", "peer": "quick-cache", "workload": "get-many", "size": 100,
     "concurrency": 1, "exit": 0, "data": {"peer_side": side(40_000, 31.0, keys_per_sec=4_000_000)}},
    {"kind": "redis-benchmark", "size": 100, "concurrency": 1, "pipeline": 1, "test": "GET",
     "rps": 30_000.0, "p50_ms": 0.03, "p99_ms": 0.08},
    {"kind": "footprint", "exit": 0,
     "data": {"entries": 1000, "value_size": 100, "key_len": 18, "ratio": 1.25,
              "adapter": {"side": "adapter", "live_entries": 1000, "rss_before_kib": 1000,
                          "rss_after_kib": 1500, "bytes_per_entry": 512.0},
              "raw": {"side": "raw", "live_entries": 1000, "rss_before_kib": 1000,
                      "rss_after_kib": 1400, "bytes_per_entry": 409.6}}},
    {"kind": "leak", "backend": "redis", "exit": 0,
     "data": {"adapter": {"ops": 5000, "errors": 0},
              "samples": [{"rss_kib": 9000, "server_connections": 2},
                          {"rss_kib": 9100, "server_connections": None}]}},
]

ENV = {"QUICK": "1", "LOAD_BEFORE": "0.50 0.40 0.30", "LOAD_AFTER": "1.90 1.00 0.60",
       "STARTED": "2026-12-02T08:00:00Z", "ELAPSED": "42", "CLK_TCK": "100",
       "CPU_BEFORE": "cpu 100 0 100 1000 0 0 0 0 0 0", "CPU_AFTER": "cpu 300 0 300 1200 0 0 0 0 0 0",
       "OWN_TICKS": "400", "CHILDREN_TIMES": "0m0.0s 0m0.0s", "CHILDREN_BEFORE": "0m0.0s 0m0.0s",
       "LEAK_DURATION": "3s", "CHARTS": "docs/bench/throughput-memory.svg docs/bench/latency.svg"}

MACHINE = {"lscpu": "Model name:  Test CPU", "nproc": "2", "free -h": "head\nMem: 8Gi 1Gi",
           "uname -r": "6.1.0"}


def fake_sh(command):
    return MACHINE.get(command, f"{command} 1.0")


def render(rows=ROWS, env=ENV):
    return bench_report.render(rows, ["cachectl bench memory://"], env, sh=fake_sh,
                               lock_versions=lambda path, names: "tokio 1.0")


class FormatTest(unittest.TestCase):
    def test_rates_are_grouped_and_missing_figures_are_dashes(self):
        self.assertEqual(bench_report.fmt_rate(1234567.8), "1,234,568")
        self.assertEqual(bench_report.fmt_rate(None), "-")
        self.assertEqual(bench_report.fmt_ratio(0.956), "0.96")
        self.assertEqual(bench_report.fmt_ratio(None), "-")

    def test_latencies_keep_a_decimal_below_100_us(self):
        self.assertEqual(bench_report.fmt_us(12.34), "12.3")
        self.assertEqual(bench_report.fmt_us(1234.5), "1,234")
        self.assertEqual(bench_report.fmt_us(None), "-")

    def test_half_iqr_needs_four_values(self):
        self.assertIsNone(bench_report.half_iqr([1.0, 2.0, 3.0]))
        self.assertEqual(bench_report.half_iqr([1.0, 2.0, 4.0, 8.0]), 1.0)


class MachineFiguresTest(unittest.TestCase):
    def test_cpu_ticks_leave_out_idle_and_iowait(self):
        busy, total = bench_report.cpu_ticks("cpu 10 1 5 100 4 2 3 0 0 0")
        self.assertEqual((busy, total), (21, 125))

    def test_steal_is_the_eighth_field(self):
        self.assertEqual(bench_report.steal_ticks("cpu 10 1 5 100 4 2 3 7 0 0"), 7)
        self.assertEqual(bench_report.steal_ticks("cpu 10 1 5 100"), 0)

    def test_times_of_the_shell_read_as_seconds(self):
        self.assertEqual(bench_report.seconds_of("2m3.5s"), 123.5)

    def test_lock_versions_lists_every_version_of_a_name(self):
        lock = ('[[package]]\nname = "redis"\nversion = "1.8.1"\n\n'
                '[[package]]\nname = "redis"\nversion = "0.27.0"\n\n'
                '[[package]]\nname = "tokio"\nversion = "1.48.0"\n')
        with tempfile.NamedTemporaryFile("w", suffix=".lock", delete=False) as file:
            file.write(lock)
        try:
            found = bench_report.lock_versions(file.name, ["tokio", "redis", "moka"])
        finally:
            os.unlink(file.name)
        self.assertEqual(found, "tokio 1.48.0, redis 1.8.1 / 0.27.0")


class ResultLinesTest(unittest.TestCase):
    def test_a_record_carries_labels_exit_and_document(self):
        line = json.loads(bench_report.record('{"kind": "cell"}', "1", '{"ops": 3}'))
        self.assertEqual(line, {"kind": "cell", "exit": 1, "data": {"ops": 3}})

    def test_a_command_without_output_records_an_empty_document(self):
        line = json.loads(bench_report.record('{"kind": "leak"}', "2", "\n"))
        self.assertEqual(line["data"], {})

    def test_redis_benchmark_csv_becomes_a_line_per_test(self):
        csv_text = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
                    '"p99_latency_ms","max_latency_ms"\n'
                    '"SET","50000.00","0.5","0.1","0.4","0.9","1.2","3.0"\n'
                    '"GET","60000.00","0.4","0.1","0.3","0.8","1.1","2.0"\n')
        lines = [json.loads(line) for line in
                 bench_report.redis_benchmark("redis-benchmark", "100", "16", "1", csv_text)]
        self.assertEqual([line["test"] for line in lines], ["SET", "GET"])
        self.assertEqual(lines[1]["rps"], 60000.0)
        self.assertEqual(lines[1]["p99_ms"], 1.1)
        self.assertEqual((lines[0]["size"], lines[0]["concurrency"], lines[0]["pipeline"]), (100, 16, 1))
        beside = json.loads(bench_report.redis_benchmark("redis-benchmark-beside", "100", "128", "16",
                                                         csv_text)[0])
        self.assertNotIn("p99_ms", beside)


class RenderTest(unittest.TestCase):
    def setUp(self):
        self.lines = render()
        self.text = "\n".join(self.lines)

    def test_the_report_says_a_quick_run_is_a_smoke_run(self):
        self.assertTrue(self.lines[0].startswith("# Benchmarks"))
        self.assertIn("--quick (a smoke run: too short to quote)", self.text)
        self.assertIn("2026-12-02T08:00:00Z in 42 s", self.text)

    def test_a_busy_machine_is_flagged(self):
        # 400 busy ticks of 400, all of them this run's own: the machine was quiet.
        self.assertIn("The machine was quiet", self.text)
        busy = dict(ENV, LOAD_BEFORE="1.50 1.00 1.00")
        self.assertIn("The machine was not quiet", "\n".join(render(env=busy)))

    def test_steal_is_told_apart_from_other_processes(self):
        # 200 more busy ticks, all of them steal: no other process, but a busy host.
        stolen = "\n".join(render(env=dict(ENV, CPU_AFTER="cpu 300 0 300 1200 0 0 0 200 0 0")))
        self.assertIn("while it ran: 0 % of the machine", stolen)
        self.assertIn("Steal: the hypervisor ran something else on this machine's virtual CPUs for 25 %", stolen)
        self.assertIn("the hypervisor took 25 % of the virtual CPUs' time (steal)", stolen)

    def test_targets_use_the_median_of_the_round_ratios(self):
        target = next(line for line in self.lines if "adapter/raw throughput (memory)" in line)
        self.assertIn("median of the rows >= 0.90, no row below 0.85 | median 0.955, lowest 0.950 (get, 100 B, c=1)",
                      target)
        self.assertTrue(target.endswith("| yes |"), target)
        redis = next(line for line in self.lines if "adapter/raw throughput (redis)" in line)
        self.assertTrue(redis.endswith("| no |"), redis)

    def test_one_row_below_the_floor_misses_the_target(self):
        rows = ROWS + [cell("memory", "set", 100, 1, side(800_000, 1.5), side(1_000_000, 1.2), [0.80, 0.84, 0.83])]
        target = next(line for line in render(rows) if "adapter/raw throughput (memory)" in line)
        # The median of the rows (0.95) is above 0.90, but one row is below 0.85.
        self.assertIn("median 0.950, lowest 0.830 (set, 100 B, c=1)", target)
        self.assertTrue(target.endswith("| no |"), target)

    def test_get_many_is_compared_with_sequential_gets(self):
        row = next(line for line in self.lines if line.startswith("| get_many(100)"))
        self.assertIn("5,000,000 keys/s vs 1,000,000 gets/s: 5.0x | no |", row)

    def test_cells_and_peers_share_a_row(self):
        head = next(line for line in self.lines if line.startswith("| workload | value |"))
        self.assertTrue(head.endswith("| `cached-memory` ops/s (p99 µs) | `quick-cache` ops/s (p99 µs) | "
                                      "`moka-future` ops/s (p99 µs) | `moka-sync` ops/s (p99 µs) |"), head)
        row = next(line for line in self.lines if line.startswith("| get | 100 B | 1 | 1,000,000 |"))
        self.assertIn("| 0.95 |", row)
        self.assertTrue(row.endswith("| 2,000,000 (0.9) | 900,000 (1.1) | 400,000 (20.0) | 500,000 (9.0) |"), row)
        many = next(line for line in self.lines if line.startswith("| get-many (100 keys) | 100 B | 1 |"))
        self.assertTrue(many.endswith("| - | 40,000 (4.00 M keys/s) (31.0) | - | - |"), many)
        self.assertIn("Peers: `cached-memory`, `quick-cache`, `moka-future`, `moka-sync` from `benches/peers`",
                      self.text)

    def test_every_peer_has_its_target_line(self):
        cached = next(line for line in self.lines
                      if "as fast as cached-memory on every get and get-miss row (memory) |" in line)
        self.assertIn("faster or equal on 0 of 1 rows; adapter/peer from 0.50 to 0.50 | no |", cached)
        quick = next(line for line in self.lines if "as fast as quick-cache on every row (memory)" in line)
        self.assertIn("faster or equal on 2 of 2 rows; adapter/peer from 1.11 to 1.25 | shown for comparison |", quick)

    def test_peer_targets_count_only_their_rows(self):
        rows = ROWS + [
            cell("redis", "get", 100, 16, side(100_000, 80.0), side(100_000, 79.0), [1.0]),
            cell("redis", "get", 100, 128, side(200_000, 80.0), side(190_000, 79.0), [1.05]),
            {"kind": "peer", "backend": "redis", "peer": "fred", "workload": "get", "size": 100,
             "concurrency": 1, "exit": 0, "data": {"peer_side": side(30_000, 50.0)}},
            {"kind": "peer", "backend": "redis", "peer": "fred", "workload": "get", "size": 100,
             "concurrency": 16, "exit": 0, "data": {"peer_side": side(90_000, 50.0)}},
            {"kind": "peer", "backend": "redis", "peer": "fred", "workload": "get", "size": 100,
             "concurrency": 128, "exit": 0, "data": {"peer_side": side(250_000, 50.0)}},
        ]
        fred = next(line for line in render(rows) if "as fast as fred on every row at c=16 and c=128 (redis)" in line)
        # The c=1 row, which fred wins too, is not one of the target's rows.
        self.assertIn("faster or equal on 1 of 2 rows; adapter/peer from 0.80 to 1.11 | no |", fred)

    def test_memcached_is_held_to_the_raw_pool_and_to_redis(self):
        rows = ROWS + [
            cell("redis", "get", 100, 128, side(200_000, 80.0), side(190_000, 79.0), [1.05]),
            cell("memcached", "get", 100, 128, side(180_000, 80.0), side(50_000, 79.0), [3.4, 3.6, 3.5]),
        ]
        lines = render(rows)
        raw = next(line for line in lines if line.startswith("| memcached GET 100 B at c=128 >= 3x"))
        self.assertIn("180,000/s vs 50,000/s; median of the per-round ratios 3.50x | yes |", raw)
        redis = next(line for line in lines if line.startswith("| memcached GET 100 B at c=128 >= 0.8x"))
        self.assertIn("180,000/s vs 200,000/s: 0.90x | yes |", redis)

    def test_memcached_and_redis_in_alternating_rounds_decide_against_redis(self):
        both = {"kind": "alternation", "backend": "memcached+redis", "workload": "get", "size": 100,
                "concurrency": 128, "exit": 0, "data": {"sides": [
                    {"name": "adapter", "ops_per_sec_median": 150_000, "first_over_this_median": 1.0},
                    {"name": "adapter@redis://127.0.0.1:6379", "ops_per_sec_median": 200_000,
                     "first_over_this_median": 0.78}]}}
        rows = ROWS + [
            cell("redis", "get", 100, 128, side(200_000, 80.0), side(190_000, 79.0), [1.05]),
            cell("memcached", "get", 100, 128, side(180_000, 80.0), side(50_000, 79.0), [3.4, 3.6, 3.5]),
            both,
        ]
        redis = next(line for line in render(rows) if line.startswith("| memcached GET 100 B at c=128 >= 0.8x"))
        # The rounds decide, though the cells minutes apart would pass.
        self.assertIn("150,000/s vs 200,000/s in alternating rounds of one process, median of the per-round "
                      "ratios 0.78x; in the cells, minutes apart: 0.90x | no |", redis)

    def test_the_engine_rounds_hold_memory_to_cached(self):
        def engine(workload, ratio):
            return {"kind": "engine", "exit": 0, "data": {
                "workload": workload, "value_size": 100, "concurrency": 1,
                "sides": [{"name": "memory-adapter", "first_over_this_median": 1.0},
                          {"name": "cached-memory", "first_over_this_median": ratio}]}}
        lines = render(ROWS + [engine("get", 1.2), engine("get-miss", 0.97), engine("set", 0.5)])
        line = next(line for line in lines if "in alternating rounds of one process" in line)
        self.assertIn("cached-memory on every get and get-miss row (memory)", line)
        # The set row is not one of the target's rows.
        self.assertIn("faster or equal on 1 of 2 rows; median adapter/peer per row from 0.97 to 1.20 | no |", line)
        # The line of the separate processes stays, for comparison only.
        separate = next(line for line in lines if line.startswith(
            "| at least as fast as cached-memory on every get and get-miss row (memory) |"))
        self.assertTrue(separate.endswith("| shown for comparison |"), separate)

    def test_the_network_rounds_hold_redis_to_fred(self):
        def alternation(concurrency, ratio):
            return {"kind": "alternation", "backend": "redis", "workload": "get", "size": 100,
                    "concurrency": concurrency, "exit": 0, "data": {
                        "sides": [{"name": "adapter", "first_over_this_median": 1.0},
                                  {"name": "fred", "first_over_this_median": ratio}]}}
        rows = ROWS + [
            cell("redis", "get", 100, 16, side(100_000, 80.0), side(100_000, 79.0), [1.0]),
            {"kind": "peer", "backend": "redis", "peer": "fred", "workload": "get", "size": 100,
             "concurrency": 16, "exit": 0, "data": {"peer_side": side(90_000, 50.0)}},
            alternation(1, 0.5), alternation(16, 1.02), alternation(128, 1.10),
        ]
        lines = render(rows)
        line = next(line for line in lines if "fred on every row at c=16 and c=128 (redis), in alternating" in line)
        self.assertIn("faster or equal on 2 of 2 rows; median adapter/peer per row from 1.02 to 1.10 | yes |", line)
        # And the table of the rounds, under the backend's own.
        start = lines.index("### redis: the adapter and its peers in alternating rounds")
        self.assertLess(lines.index("## redis, default mode (one multiplexed ConnectionManager)"), start)
        row = next(line for line in lines[start:] if line.startswith("| get | 100 B | 128 |"))
        self.assertEqual(row, "| get | 100 B | 128 | - | - (1.10) |")

    def test_the_engines_are_compared_on_the_reads_and_writes(self):
        start = self.lines.index("## Choosing the in-memory engine")
        row = next(line for line in self.lines[start:] if line.startswith("| get | 100 B | 1 |"))
        self.assertEqual(row, "| get | 100 B | 1 | 1,000,000 | 400,000 | 500,000 | 900,000 | 2,000,000 | 2.00 | 0.50 |")
        self.assertIn("Memory per entry at 1,000 entries: 512 bytes on quick_cache", self.text)
        self.assertFalse(any(line.startswith("| get-many") for line in self.lines[start:start + 12]))
        # Right after the memory table, before the next backend's.
        self.assertLess(self.lines.index("## memory (quick_cache)"), start)
        self.assertLess(start, self.lines.index("## redis, default mode (one multiplexed ConnectionManager)"))

    def test_charts_come_before_the_tables(self):
        chart = self.lines.index("![throughput memory](docs/bench/throughput-memory.svg)")
        self.assertIn("![latency](docs/bench/latency.svg)", self.lines)
        self.assertLess(chart, self.lines.index("## Against the targets"))
        without = "\n".join(render(env=dict(ENV, CHARTS="")))
        self.assertNotIn("## Charts", without)

    def test_failed_runs_are_listed(self):
        self.assertIn("('redis', 'get', 100, 1): exit 1", self.text)

    def test_footprint_and_leak_runs_have_their_tables(self):
        self.assertIn("| adapter | 1,000 | 1,000 | 1,500 | 512 | 118 |", self.text)
        self.assertIn("Adapter/raw: 1.25.", self.text)
        self.assertIn("| redis | 5,000 | 0 | 9,000, 9,100 | 2, - |", self.text)

    def test_the_commands_close_the_report(self):
        self.assertIn("<details><summary>1 commands</summary>", self.text)
        self.assertIn("cachectl bench memory://", self.lines[-5:])



class KeptSections(unittest.TestCase):
    def test_hand_written_sections_survive_a_regeneration(self):
        old = "\n".join([
            "# Benchmarks", "", "## memory", "old table", "",
            "## Soak", "", bench_report.KEPT_MARK, "0 lost", "",
            "## What limits the figures", "old text",
        ])
        new = ["# Benchmarks", "", "## memory", "new table", "",
               "## What limits the figures", "new text"]
        merged = bench_report.with_kept(new, old)
        self.assertIn("0 lost", merged)
        self.assertNotIn("old table", merged)
        self.assertLess(merged.index("## Soak"), merged.index("## What limits the figures"))
        self.assertEqual(bench_report.with_kept(new, ""), new)


if __name__ == "__main__":
    unittest.main()
