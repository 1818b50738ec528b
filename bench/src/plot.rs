//! The `--plot` picture: one SVG with a latency histogram per latency
//! workload (share of probes per log-spaced bucket, one line per engine)
//! and, below, every timed workload's median as a ratio to runq's (bars
//! above the line at 1 mean slower than runq).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::engine::EngineKind;
use crate::report::WorkloadResult;
use crate::workload::Metric;

/// Buckets per latency histogram, log-spaced between the smallest and the
/// largest probe of all engines.
const BUCKETS: usize = 40;
const WIDTH: u32 = 1400;
const PANEL_HEIGHT: u32 = 420;
const BAR_HEIGHT: u32 = 560;

/// A distinct colour per engine; runq's stands out.
fn colour(engine: EngineKind) -> RGBColor {
    match engine {
        EngineKind::Runq => RGBColor(214, 39, 40),
        EngineKind::RunqUnpinned => RGBColor(140, 20, 30),
        EngineKind::RunqElastic => RGBColor(247, 129, 191),
        EngineKind::Rayon => RGBColor(31, 119, 180),
        EngineKind::Tokio => RGBColor(44, 160, 44),
        EngineKind::TokioBlocking => RGBColor(23, 190, 207),
        EngineKind::Crossbeam => RGBColor(255, 127, 14),
        EngineKind::Mpsc => RGBColor(148, 103, 189),
    }
}

/// Writes the SVG to `path`.
pub fn write_svg(
    path: &Path,
    results: &[WorkloadResult],
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let latency: Vec<&WorkloadResult> = results
        .iter()
        .filter(|r| r.workload.metric() == Metric::Latency)
        .collect();
    let timed: Vec<&WorkloadResult> = results
        .iter()
        .filter(|r| r.workload.metric() == Metric::Time)
        .collect();
    let top = if latency.is_empty() { 0 } else { PANEL_HEIGHT };
    let bottom = if timed.is_empty() { 0 } else { BAR_HEIGHT };
    let root = SVGBackend::new(path, (WIDTH, 40 + top + bottom)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (upper, lower) = root.split_vertically(top);
    if !latency.is_empty() {
        let panels = upper.split_evenly((1, latency.len()));
        for (area, result) in panels.iter().zip(&latency) {
            latency_panel(area, result)?;
        }
    }
    if !timed.is_empty() {
        ratio_panel(&lower, &timed)?;
    }
    root.present()?;
    Ok(())
}

/// Share of probes (percent) per log-spaced bucket between `lo` and `hi` ns.
fn buckets(h: &Histogram<u64>, lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let step = (hi / lo).ln() / BUCKETS as f64;
    let mut counts = vec![0u64; BUCKETS];
    for v in h.iter_recorded() {
        let x = h.median_equivalent(v.value_iterated_to()) as f64;
        let i = (((x / lo).ln() / step).floor().max(0.0) as usize).min(BUCKETS - 1);
        counts[i] += v.count_at_value();
    }
    let total = h.len().max(1) as f64;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let centre_ns = lo * ((i as f64 + 0.5) * step).exp();
            (centre_ns / 1e3, c as f64 * 100.0 / total)
        })
        .collect()
}

fn latency_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    result: &WorkloadResult,
) -> Result<(), Box<dyn std::error::Error>> {
    let merged: Vec<(EngineKind, Histogram<u64>)> = result
        .series
        .iter()
        .filter_map(|s| Some((s.engine, s.merged_latency().filter(|h| !h.is_empty())?)))
        .collect();
    if merged.is_empty() {
        return Ok(());
    }
    let lo = merged
        .iter()
        .map(|(_, h)| h.min())
        .min()
        .unwrap_or(1)
        .max(1) as f64
        * 0.9;
    let hi = merged.iter().map(|(_, h)| h.max()).max().unwrap_or(1) as f64 * 1.1;
    let hi = hi.max(lo * 10.0);
    let series: Vec<(EngineKind, Vec<(f64, f64)>)> = merged
        .iter()
        .map(|(e, h)| (*e, buckets(h, lo, hi)))
        .collect();
    let top = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} - share of probes per bucket", result.workload),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo / 1e3..hi / 1e3).log_scale(), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("submit-to-start (us, log scale)")
        .y_desc("% of probes")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (engine, pts) in series {
        let c = colour(engine);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(engine.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn ratio_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    results: &[&WorkloadResult],
) -> Result<(), Box<dyn std::error::Error>> {
    let engines: Vec<EngineKind> = EngineKind::ALL
        .into_iter()
        .filter(|e| {
            results
                .iter()
                .any(|r| r.series.iter().any(|s| s.engine == *e))
        })
        .collect();
    let ratios: Vec<Vec<(EngineKind, f64)>> = results
        .iter()
        .map(|r| {
            r.series
                .iter()
                .filter_map(|s| Some((s.engine, r.ratio_to_runq(s)?)))
                .collect()
        })
        .collect();
    let (mut lo, mut hi) = (0.5f64, 2.0f64);
    for &(_, v) in ratios.iter().flatten() {
        lo = lo.min(v * 0.8);
        hi = hi.max(v * 1.25);
    }
    let n = results.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "median time as a multiple of runq's (above 1: slower than runq; log scale)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(170)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("x runq")
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()?;
    let width = 0.8 / engines.len().max(1) as f64;
    for (j, &engine) in engines.iter().enumerate() {
        let c = colour(engine);
        let bars = ratios.iter().enumerate().filter_map(|(i, row)| {
            let &(_, v) = row.iter().find(|(e, _)| *e == engine)?;
            let x0 = i as f64 + 0.1 + j as f64 * width;
            Some(Rectangle::new(
                [(x0, 1.0), (x0 + width * 0.9, v)],
                c.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(engine.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart.draw_series(LineSeries::new(
        [(0.0, 1.0), (n, 1.0)],
        BLACK.stroke_width(1),
    ))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    // Workload names under their group of bars, written downwards.
    let style = TextStyle::from(("sans-serif", 13).into_font())
        .transform(FontTransform::Rotate90)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (left, top) = area.get_base_pixel();
    for (i, r) in results.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        area.draw(&Text::new(
            r.workload.name(),
            (x - left, y - top + 8),
            style.clone(),
        ))?;
    }
    Ok(())
}
