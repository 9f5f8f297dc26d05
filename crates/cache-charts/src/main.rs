//! `bench-charts RESULTS OUT_DIR`: the SVG charts of BENCHMARKS.md from the results of
//! `scripts/bench`.

use std::{path::Path, process::ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [results, out_dir] = args.as_slice() else {
        eprintln!("usage: bench-charts RESULTS.jsonl OUT_DIR");
        return ExitCode::from(2);
    };
    let drawn = std::fs::read_to_string(results)
        .map_err(|err| format!("cannot read {results}: {err}"))
        .and_then(|text| cache_charts::points(&text))
        .and_then(|points| {
            std::fs::create_dir_all(out_dir)
                .map_err(|err| format!("cannot create {out_dir}: {err}"))?;
            cache_charts::draw_all(&points, Path::new(out_dir))
        });
    match drawn {
        Ok(written) => {
            for path in written {
                eprintln!("bench-charts: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench-charts: {err}");
            ExitCode::FAILURE
        }
    }
}
