//! The SVG charts: throughput by concurrency per backend, and latency percentiles.

use std::path::{Path, PathBuf};

use plotters::{coord::Shift, prelude::*};

use crate::data::Point;

/// Workloads in the order the report lists them.
const WORKLOADS: [&str; 5] = ["get", "get-miss", "set", "mix", "get-many"];

/// The cell the latency chart shows: workload, value size, concurrency.
pub const LATENCY_CELL: (&str, u64, u64) = ("get", 100, 16);

/// Colours by series: the adapter and its raw client first, then the peers in the order
/// met; the same series has the same colour in every panel of a chart.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Draws `throughput-<backend>.svg` for every backend with figures and `latency.svg`
/// into `out_dir`, and returns the files written.
///
/// # Errors
///
/// A file that cannot be written; no figures at all.
pub fn draw_all(points: &[Point], out_dir: &Path) -> Result<Vec<PathBuf>, String> {
    if points.is_empty() {
        return Err("no figures to draw: the results hold no cell".to_owned());
    }
    let mut backends: Vec<&str> = Vec::new();
    for point in points {
        if !backends.contains(&point.backend.as_str()) {
            backends.push(&point.backend);
        }
    }
    let mut written = Vec::new();
    for backend in backends {
        let path = out_dir.join(format!("throughput-{backend}.svg"));
        throughput(points, backend, &path).map_err(|err| format!("{}: {err}", path.display()))?;
        written.push(path);
    }
    let path = out_dir.join("latency.svg");
    latency(points, &path).map_err(|err| format!("{}: {err}", path.display()))?;
    written.push(path);
    Ok(written)
}

/// The series of `points` in colour order: adapter, raw, then the others as met.
fn series_order(points: &[&Point]) -> Vec<String> {
    let mut names: Vec<String> = ["adapter", "raw"]
        .into_iter()
        .filter(|name| points.iter().any(|point| point.series == *name))
        .map(str::to_owned)
        .collect();
    for point in points {
        if !names.contains(&point.series) {
            names.push(point.series.clone());
        }
    }
    names
}

fn colour_of(order: &[String], series: &str) -> RGBColor {
    let index = order.iter().position(|name| name == series).unwrap_or(0);
    COLOURS[index % COLOURS.len()]
}

/// 1.2M, 35k, 740: short labels for a log axis.
fn short(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}k", v / 1e3),
        v if v >= 10.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

/// A log range around `values`, with some room above and below.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    if low > high {
        return 1.0..10.0;
    }
    (low / 1.6).max(1e-3)..(high * 1.6).max(low * 2.0)
}

fn throughput(points: &[Point], backend: &str, path: &Path) -> DrawResult<()> {
    let mine: Vec<&Point> = points
        .iter()
        .filter(|point| point.backend == backend)
        .collect();
    let order = series_order(&mine);
    let mut sizes: Vec<u64> = mine.iter().map(|point| point.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let workloads: Vec<&str> = WORKLOADS
        .into_iter()
        .filter(|workload| mine.iter().any(|point| point.workload == *workload))
        .collect();
    let (width, height) = (
        330 * workloads.len().max(1) as u32,
        310 * sizes.len().max(1) as u32 + 50,
    );
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!("{backend}: operations per second by concurrency (log scales)");
    let root = root.titled(&title, ("sans-serif", 22))?;
    let panels = root.split_evenly((sizes.len(), workloads.len()));
    let mut panels = panels.iter();
    for size in &sizes {
        for workload in &workloads {
            let Some(area) = panels.next() else { break };
            let cell: Vec<&Point> = mine
                .iter()
                .copied()
                .filter(|point| point.size == *size && point.workload == *workload)
                .collect();
            let caption = format!("{workload}, {size} B");
            throughput_panel(area, &caption, &cell, &order)?;
        }
    }
    root.present()?;
    Ok(())
}

fn throughput_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    cell: &[&Point],
    order: &[String],
) -> DrawResult<()> {
    let y_range = log_range(cell.iter().map(|point| point.ops_per_sec));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d((0.8f64..180.0).log_scale(), y_range.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("concurrency")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| short(*y))
        .label_style(("sans-serif", 11))
        .draw()?;
    for name in order {
        let mut line: Vec<(f64, f64)> = cell
            .iter()
            .filter(|point| &point.series == name)
            .map(|point| (point.concurrency as f64, point.ops_per_sec))
            .collect();
        if line.is_empty() {
            continue;
        }
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let colour = colour_of(order, name);
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            line.into_iter()
                .map(|at| Circle::new(at, 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 10))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

fn latency(points: &[Point], path: &Path) -> DrawResult<()> {
    let (workload, size, concurrency) = LATENCY_CELL;
    let chosen: Vec<&Point> = points
        .iter()
        .filter(|p| p.workload == workload && p.size == size && p.concurrency == concurrency)
        .collect();
    let mut backends: Vec<&str> = Vec::new();
    for point in &chosen {
        if !backends.contains(&point.backend.as_str()) {
            backends.push(&point.backend);
        }
    }
    let root = SVGBackend::new(path, (330 * backends.len().max(1) as u32, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "latency percentiles, µs (log scale): {workload}, {size} B values, {concurrency} callers"
    );
    let root = root.titled(&title, ("sans-serif", 20))?;
    let panels = root.split_evenly((1, backends.len().max(1)));
    for (backend, area) in backends.iter().zip(panels.iter()) {
        let cell: Vec<&Point> = chosen
            .iter()
            .copied()
            .filter(|p| p.backend == *backend)
            .collect();
        latency_panel(area, backend, &cell)?;
    }
    root.present()?;
    Ok(())
}

fn latency_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    backend: &str,
    cell: &[&Point],
) -> DrawResult<()> {
    let order = series_order(cell);
    let percentiles = |point: &Point| [point.p50_us, point.p99_us, point.p999_us];
    let y_range = log_range(
        cell.iter()
            .flat_map(|point| percentiles(point))
            .filter(|us| *us > 0.0),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(backend, ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(-0.3f64..2.3, y_range.log_scale())?;
    chart
        .configure_mesh()
        .x_labels(3)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "p50".to_owned(),
            1 => "p99".to_owned(),
            2 => "p99.9".to_owned(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| short(*y))
        .label_style(("sans-serif", 11))
        .draw()?;
    for name in &order {
        let Some(point) = cell.iter().find(|point| &point.series == name) else {
            continue;
        };
        let line: Vec<(f64, f64)> = percentiles(point)
            .into_iter()
            .enumerate()
            .filter(|(_, us)| *us > 0.0)
            .map(|(i, us)| (i as f64, us))
            .collect();
        let colour = colour_of(&order, name);
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            line.into_iter()
                .map(|at| Circle::new(at, 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 10))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(backend: &str, workload: &str, concurrency: u64, series: &str, ops: f64) -> Point {
        Point {
            backend: backend.to_owned(),
            workload: workload.to_owned(),
            size: 100,
            concurrency,
            series: series.to_owned(),
            ops_per_sec: ops,
            p50_us: 1.0,
            p99_us: 5.0,
            p999_us: 20.0,
        }
    }

    #[test]
    fn every_backend_gets_its_chart_with_every_series() {
        let mut points = Vec::new();
        for concurrency in [1, 16, 128] {
            for (series, ops) in [("adapter", 1e6), ("raw", 1.1e6), ("quick-cache", 2e6)] {
                points.push(point("memory", "get", concurrency, series, ops));
            }
            points.push(point("redis", "set", concurrency, "fred", 9e4));
        }
        let dir = std::env::temp_dir().join(format!("cache-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = draw_all(&points, &dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "throughput-memory.svg",
                "throughput-redis.svg",
                "latency.svg"
            ]
        );
        let memory = std::fs::read_to_string(&written[0]).unwrap();
        assert!(memory.starts_with("<svg"), "{}", &memory[..60]);
        for text in ["get, 100 B", "adapter", "raw", "quick-cache", "concurrency"] {
            assert!(
                memory.contains(text),
                "{text} missing from the memory chart"
            );
        }
        let latency = std::fs::read_to_string(&written[2]).unwrap();
        assert!(latency.contains("p99.9") && latency.contains("memory"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        assert!(draw_all(&[], Path::new(".")).is_err());
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short(2_345_678.0), "2.3M");
        assert_eq!(short(35_200.0), "35k");
        assert_eq!(short(740.0), "740");
        assert_eq!(short(1.25), "1.2");
    }
}
