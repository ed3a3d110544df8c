//! SVG plots of a report: every time series (join: fraction of agents with
//! a full view vs time) and the CDF of every protocol latency distribution
//! (detection, leave, dissemination, query, partition).

use std::path::Path;

use plotters::prelude::*;

use crate::report::{HistSummary, Report};

const SIZE: (u32, u32) = (800, 500);

/// A file-name-safe form of `s`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(40).collect()
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Whether a distribution is a protocol latency worth a CDF.
fn wants_cdf(h: &HistSummary) -> bool {
    !h.samples.is_empty() && !h.name.contains("harness") && !h.name.contains("time to full view")
}

/// Writes every plot of `r` into `dir`; returns the file names.
pub fn write_all(r: &Report, dir: &Path, stem: &str) -> std::io::Result<Vec<String>> {
    let virt = r.meta.mode == "sim";
    let unit = if virt { "virtual" } else { "real" };
    let mut files = Vec::new();
    for p in &r.phases {
        for s in &p.series {
            if s.points.is_empty() {
                continue;
            }
            let file = format!("{stem}-{}-{}.svg", p.scenario, slug(&s.name));
            let title =
                format!("{}: {} ({} nodes, {})", p.scenario, s.name, r.meta.nodes, r.meta.mode);
            let xlabel = format!("seconds after the last join command ({unit} time)");
            line(&dir.join(&file), &title, &xlabel, &s.name, &s.points)?;
            files.push(file);
        }
        for h in p.hists.iter().filter(|h| wants_cdf(h)) {
            let mut xs = h.samples.clone();
            xs.sort_by(f64::total_cmp);
            let n = xs.len() as f64;
            let pts: Vec<(f64, f64)> =
                xs.iter().enumerate().map(|(i, &x)| (x / 1000.0, (i + 1) as f64 / n)).collect();
            let file = format!("{stem}-{}-{}-cdf.svg", p.scenario, slug(&h.name));
            let title = format!(
                "{}: CDF of {} ({} nodes, {})",
                p.scenario, h.name, r.meta.nodes, r.meta.mode
            );
            let xlabel = format!("seconds ({unit} time)");
            line(&dir.join(&file), &title, &xlabel, "fraction", &pts)?;
            files.push(file);
        }
    }
    Ok(files)
}

/// A step-like line plot of `pts`, y in [0, 1].
fn line(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    pts: &[(f64, f64)],
) -> std::io::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(io_err)?;
    let xmax = pts.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..xmax, 0f64..1.02f64)
        .map_err(io_err)?;
    chart.configure_mesh().x_desc(xlabel).y_desc(ylabel).draw().map_err(io_err)?;
    chart.draw_series(LineSeries::new(pts.iter().copied(), &BLUE)).map_err(io_err)?;
    root.present().map_err(io_err)?;
    Ok(())
}
