//! Turns cells (JSON lines) into the comparison: a table, ratios to the
//! direct backend, the sidecar's ratio to each peer, JSON and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::load::CellResult;

/// The median repetition of one (workload, target) cell.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) target: String,
    pub(crate) reps: usize,
    /// The median repetition by throughput.
    pub(crate) median: CellResult,
    /// Median op/s (MiB/s for bodies of 1 MiB and more) ratio to `direct` in
    /// the same repetition order, when there is a direct cell.
    pub(crate) ratio_to_direct: Option<f64>,
}

/// Throughput in the unit the workload is judged by: op/s for small
/// objects, MiB/s from 1 MiB up.
fn score(c: &CellResult) -> f64 {
    if c.size >= 1024 * 1024 {
        c.mib_per_s
    } else {
        c.req_per_s
    }
}

fn median(mut v: Vec<CellResult>) -> CellResult {
    v.sort_by(|a, b| score(a).total_cmp(&score(b)));
    let i = (v.len() - 1) / 2;
    v.swap_remove(i)
}

pub(crate) fn load(files: &[std::path::PathBuf]) -> Result<Vec<CellResult>> {
    let mut cells = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            cells.push(
                serde_json::from_str(line).with_context(|| format!("{}:{}", f.display(), n + 1))?,
            );
        }
    }
    Ok(cells)
}

pub(crate) struct Report {
    pub(crate) workloads: Vec<String>,
    pub(crate) targets: Vec<String>,
    pub(crate) rows: Vec<Row>,
}

pub(crate) fn build(cells: Vec<CellResult>, baseline: &str) -> Report {
    let mut workloads: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    let mut groups: BTreeMap<(usize, usize), Vec<CellResult>> = BTreeMap::new();
    for c in cells {
        let w = match workloads.iter().position(|w| *w == c.workload) {
            Some(i) => i,
            None => {
                workloads.push(c.workload.clone());
                workloads.len() - 1
            }
        };
        let t = match targets.iter().position(|t| *t == c.target) {
            Some(i) => i,
            None => {
                targets.push(c.target.clone());
                targets.len() - 1
            }
        };
        groups.entry((w, t)).or_default().push(c);
    }
    let mut rows = Vec::new();
    for ((w, t), cells) in groups {
        let reps = cells.len();
        rows.push(Row {
            workload: workloads[w].clone(),
            target: targets[t].clone(),
            reps,
            median: median(cells),
            ratio_to_direct: None,
        });
    }
    for i in 0..rows.len() {
        let base = rows
            .iter()
            .find(|r| r.workload == rows[i].workload && r.target == baseline)
            .map(|r| score(&r.median));
        rows[i].ratio_to_direct = base
            .filter(|b| *b > 0.0)
            .map(|b| score(&rows[i].median) / b);
    }
    Report {
        workloads,
        targets,
        rows,
    }
}

/// `4 KiB`, `64 MiB`, `1 GiB`, else bytes; `sep` goes between number and unit.
pub(crate) fn size_label(n: u64, sep: &str) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{sep}{unit}", n >> shift);
        }
    }
    format!("{n}{sep}B")
}

impl Report {
    fn row(&self, w: &str, t: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.workload == w && r.target == t)
    }

    /// The full table, the ratio matrix, and the sidecar against each peer.
    pub(crate) fn markdown(&self, sidecar: &str, baseline: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "### Every cell (median of repetitions by throughput)\n");
        let _ = writeln!(
            s,
            "| workload | target | reps | op/s | MiB/s | p50 ms | p99 ms | p99.9 ms | errors | proc CPU µs/op | proc peak RSS MiB | × direct |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for w in &self.workloads {
            for t in &self.targets {
                let Some(r) = self.row(w, t) else { continue };
                let c = &r.median;
                let _ = writeln!(
                    s,
                    "| {w} | {t} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
                    r.reps,
                    c.req_per_s,
                    c.mib_per_s,
                    c.latency_us.p50 / 1000.0,
                    c.latency_us.p99 / 1000.0,
                    c.latency_us.p999 / 1000.0,
                    c.errors,
                    if c.process.pids.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.0}", c.process.cpu_us_per_op)
                    },
                    if c.process.pids.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.1}", c.process.peak_rss_kib as f64 / 1024.0)
                    },
                    r.ratio_to_direct
                        .map(|x| format!("{x:.2}"))
                        .unwrap_or_else(|| "-".into()),
                );
            }
        }
        let _ = writeln!(
            s,
            "\n### Ratio to `{baseline}` (op/s below 1 MiB, MiB/s from 1 MiB; same run)\n"
        );
        let _ = write!(s, "| workload | {baseline} |");
        let others: Vec<&String> = self.targets.iter().filter(|t| *t != baseline).collect();
        for t in &others {
            let _ = write!(s, " {t} |");
        }
        let _ = write!(s, "\n|---|---|");
        for _ in &others {
            let _ = write!(s, "---|");
        }
        s.push('\n');
        for w in &self.workloads {
            let base = self
                .row(w, baseline)
                .map(|r| {
                    let c = &r.median;
                    if c.size >= 1 << 20 {
                        format!("{:.0} MiB/s", c.mib_per_s)
                    } else {
                        format!("{:.0} op/s", c.req_per_s)
                    }
                })
                .unwrap_or_else(|| "-".into());
            let _ = write!(s, "| {w} | {base} |");
            for t in &others {
                let v = self
                    .row(w, t)
                    .and_then(|r| r.ratio_to_direct)
                    .map(|x| format!(" {x:.2} |"))
                    .unwrap_or_else(|| " - |".into());
                s.push_str(&v);
            }
            s.push('\n');
        }
        if self.targets.iter().any(|t| t == sidecar) {
            let peers: Vec<&String> = self
                .targets
                .iter()
                .filter(|t| *t != sidecar && *t != baseline)
                .collect();
            let _ = writeln!(s, "\n### `{sidecar}` ÷ each peer (same unit, same run)\n");
            let _ = write!(s, "| workload |");
            for p in &peers {
                let _ = write!(s, " ÷ {p} |");
            }
            let _ = write!(s, "\n|---|");
            for _ in &peers {
                let _ = write!(s, "---|");
            }
            s.push('\n');
            for w in &self.workloads {
                let Some(me) = self.row(w, sidecar) else {
                    continue;
                };
                let _ = write!(s, "| {w} |");
                for p in &peers {
                    let v = self
                        .row(w, p)
                        .map(|r| score(&r.median))
                        .filter(|x| *x > 0.0)
                        .map(|x| format!(" {:.2} |", score(&me.median) / x))
                        .unwrap_or_else(|| " - |".into());
                    s.push_str(&v);
                }
                s.push('\n');
            }
            // CPU per op against each peer, where measured.
            let _ = writeln!(
                s,
                "\n### Process CPU per request (µs; the process(es) under test only)\n"
            );
            let _ = write!(s, "| workload |");
            for t in &self.targets {
                let _ = write!(s, " {t} |");
            }
            let _ = write!(s, "\n|---|");
            for _ in &self.targets {
                let _ = write!(s, "---|");
            }
            s.push('\n');
            for w in &self.workloads {
                let _ = write!(s, "| {w} |");
                for t in &self.targets {
                    let v = self
                        .row(w, t)
                        .filter(|r| !r.median.process.pids.is_empty())
                        .map(|r| format!(" {:.0} |", r.median.process.cpu_us_per_op))
                        .unwrap_or_else(|| " - |".into());
                    s.push_str(&v);
                }
                s.push('\n');
            }
        }
        let errs: Vec<&Row> = self.rows.iter().filter(|r| r.median.errors > 0).collect();
        if !errs.is_empty() {
            let _ = writeln!(s, "\nErrors:");
            for r in errs {
                let _ = writeln!(
                    s,
                    "- {} / {}: {} errors, first: {}",
                    r.workload,
                    r.target,
                    r.median.errors,
                    r.median.first_error.as_deref().unwrap_or("?")
                );
            }
        }
        let sizes: Vec<String> = {
            let mut v: Vec<u64> = self.rows.iter().map(|r| r.median.size).collect();
            v.sort_unstable();
            v.dedup();
            v.into_iter().map(|n| size_label(n, " ")).collect()
        };
        let _ = writeln!(s, "\nObject sizes in this run: {}.", sizes.join(", "));
        s
    }

    /// Grouped bars: each workload, each target's ratio to direct.
    pub(crate) fn chart(&self, path: &Path, baseline: &str) -> Result<()> {
        let targets: Vec<&String> = self.targets.iter().filter(|t| *t != baseline).collect();
        let nw = self.workloads.len().max(1);
        let nt = targets.len().max(1);
        let width = (160 + nw * (nt * 22 + 30)).max(640) as u32;
        let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let ymax = self
            .rows
            .iter()
            .filter_map(|r| r.ratio_to_direct)
            .fold(1.2f64, f64::max)
            .min(4.0)
            * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Throughput as a ratio to {baseline} (same run)"),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(70)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..nw as f64, 0f64..ymax)?;
        let wl = self.workloads.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(nw * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 1e-6 && i < wl.len() {
                    wl[i].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(format!("× {baseline}"))
            .draw()?;
        let palette = [
            RGBColor(0x1f, 0x77, 0xb4),
            RGBColor(0xff, 0x7f, 0x0e),
            RGBColor(0x2c, 0xa0, 0x2c),
            RGBColor(0xd6, 0x27, 0x28),
            RGBColor(0x94, 0x67, 0xbd),
            RGBColor(0x8c, 0x56, 0x4b),
            RGBColor(0xe3, 0x77, 0xc2),
        ];
        let bar = 0.8 / nt as f64;
        for (ti, t) in targets.iter().enumerate() {
            let color = palette[ti % palette.len()];
            let mut bars = Vec::new();
            for (wi, w) in self.workloads.iter().enumerate() {
                if let Some(v) = self.row(w, t).and_then(|r| r.ratio_to_direct) {
                    let x0 = wi as f64 + 0.1 + ti as f64 * bar;
                    bars.push(Rectangle::new(
                        [(x0, 0.0), (x0 + bar * 0.9, v.min(ymax))],
                        color.filled(),
                    ));
                }
            }
            chart
                .draw_series(bars)?
                .label(t.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 1.0), (nw as f64, 1.0)],
            BLACK.stroke_width(1),
        )))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
        Ok(())
    }
}
