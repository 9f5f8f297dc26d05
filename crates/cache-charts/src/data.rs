//! The figures of a bench run, read from the JSON lines `scripts/bench` records.

use serde_json::Value;

/// One measured side of one cell: the adapter, its raw client, or a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `memory`, `redis`, `redis-pooled`, `memcached` or `redis-cluster`.
    pub backend: String,
    /// `get`, `get-miss`, `set`, `mix` or `get-many`.
    pub workload: String,
    /// Bytes per value.
    pub size: u64,
    /// Callers at once.
    pub concurrency: u64,
    /// `adapter`, `raw`, or the peer's name.
    pub series: String,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

/// Every side of every cell and peer run in `text` (one JSON document a line); other
/// kinds of lines (footprint, leak runs, redis-benchmark) and runs without figures
/// are left out.
///
/// # Errors
///
/// A line that is not JSON, naming its number.
pub fn points(text: &str) -> Result<Vec<Point>, String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(line)
            .map_err(|err| format!("line {} is not JSON: {err}", number + 1))?;
        let sides: Vec<(String, &Value)> = match row["kind"].as_str() {
            Some("cell") => ["adapter", "raw"]
                .into_iter()
                .map(|side| (side.to_owned(), &row["data"][side]))
                .collect(),
            Some("peer") => match row["peer"].as_str() {
                Some(peer) => vec![(peer.to_owned(), &row["data"]["peer_side"])],
                None => continue,
            },
            _ => continue,
        };
        for (series, side) in sides {
            if let Some(point) = point(&row, series, side) {
                found.push(point);
            }
        }
    }
    Ok(found)
}

fn point(row: &Value, series: String, side: &Value) -> Option<Point> {
    let ops_per_sec = side["ops_per_sec"].as_f64().filter(|ops| *ops > 0.0)?;
    Some(Point {
        backend: row["backend"].as_str()?.to_owned(),
        workload: row["workload"].as_str()?.to_owned(),
        size: row["size"].as_u64()?,
        concurrency: row["concurrency"].as_u64()?,
        series,
        ops_per_sec,
        p50_us: side["p50_us"].as_f64().unwrap_or(0.0),
        p99_us: side["p99_us"].as_f64().unwrap_or(0.0),
        p999_us: side["p999_us"].as_f64().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"kind":"cell","backend":"memory","workload":"get","size":100,"concurrency":16,"exit":0,"data":{"adapter":{"ops_per_sec":2000000.0,"p50_us":0.3,"p99_us":1.5,"p999_us":4.0},"raw":{"ops_per_sec":2100000.0,"p50_us":0.2,"p99_us":1.4,"p999_us":3.0}}}
{"kind":"peer","backend":"memory","peer":"cached-memory","workload":"get","size":100,"concurrency":16,"exit":0,"data":{"peer_side":{"ops_per_sec":1800000.0,"p50_us":0.2,"p99_us":1.0,"p999_us":2.0}}}
{"kind":"footprint","exit":0,"data":{}}
{"kind":"peer","backend":"memcached","peer":"opendal-memcached","workload":"get","size":100,"concurrency":1,"exit":2,"data":{}}
"#;

    #[test]
    fn cells_give_two_sides_and_peers_one() {
        let found = points(LINES).unwrap();
        let names: Vec<&str> = found.iter().map(|point| point.series.as_str()).collect();
        assert_eq!(names, ["adapter", "raw", "cached-memory"]);
        assert_eq!(found[1].ops_per_sec, 2_100_000.0);
        assert_eq!(found[2].p999_us, 2.0);
        assert_eq!((found[0].size, found[0].concurrency), (100, 16));
    }

    #[test]
    fn a_broken_line_is_named() {
        let err = points("{}\nnot json\n").unwrap_err();
        assert!(err.starts_with("line 2 "), "{err}");
    }
}
