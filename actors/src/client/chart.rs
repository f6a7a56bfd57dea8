//! The SVG chart of a measure suite, written by hand (plain text, no plotting crate): on top,
//! cumulative replies over time, one line per test; below, the distribution of arrival times
//! of every reply (a histogram). Both panels have axes, ticks and labels.

use std::fmt::Write as _;

use super::SuiteReport;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 820.0;
const LEFT: f64 = 90.0;
const PLOT_W: f64 = 800.0;
const TOP1: f64 = 70.0;
const PLOT1_H: f64 = 300.0;
const TOP2: f64 = 470.0;
const PLOT2_H: f64 = 270.0;
const BINS: usize = 50;
const MAX_POINTS: usize = 600;
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes text for XML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round tick step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let f = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * mag
}

/// `max` rounded up to a whole number of nice steps, and the step.
fn axis(max: f64) -> (f64, f64) {
    let step = nice_step(max, 5.0);
    let top = ((max / step).ceil() * step).max(step);
    (top, step)
}

fn fmt_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_owned()
    }
}

/// Draws axes, ticks, grid and labels of a panel at (`LEFT`, `top`) of height `h`.
#[allow(clippy::too_many_arguments)]
fn axes(
    out: &mut String,
    top: f64,
    h: f64,
    x_max: f64,
    x_step: f64,
    y_max: f64,
    y_step: f64,
    x_label: &str,
    y_label: &str,
) {
    let bottom = top + h;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{h}" fill="#fafafa" stroke="#333"/>"##
    );
    let mut x = 0.0;
    while x <= x_max + x_step / 2.0 {
        let px = LEFT + x / x_max * PLOT_W;
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            fmt_tick(x)
        );
        x += x_step;
    }
    let mut y = 0.0;
    while y <= y_max + y_step / 2.0 {
        let py = bottom - y / y_max * h;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(y)
        );
        y += y_step;
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        LEFT + PLOT_W / 2.0,
        bottom + 36.0,
        esc(x_label)
    );
    let cy = top + h / 2.0;
    let _ = writeln!(
        out,
        r##"<text x="24" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 24 {cy:.1})">{}</text>"##,
        esc(y_label)
    );
}

/// The chart of `report` as an SVG document.
pub fn svg(report: &SuiteReport) -> String {
    let ms = |ns: u64| ns as f64 / 1e6;
    let max_ns = report
        .tests
        .iter()
        .flat_map(|t| t.times_ns.iter().copied())
        .max()
        .unwrap_or(0);
    let max_replies = report
        .tests
        .iter()
        .map(|t| t.times_ns.len())
        .max()
        .unwrap_or(0);
    let (x_max, x_step) = axis(ms(max_ns).max(1.0));
    let (y_max, y_step) = axis((max_replies as f64).max(1.0));

    let mut out = String::with_capacity(64 * 1024);
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"##
    );
    let title = format!(
        "choir measure: {} tests of {}#generate({}) to {} nodes{}",
        report.tests.len(),
        report.plan.agent,
        report.plan.size,
        report.discovered,
        if report.plan.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.plan.description)
        }
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"##,
        WIDTH / 2.0,
        esc(&title)
    );
    let s = &report.summary;
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="48" text-anchor="middle">ok {} · failed {} · no response {} · p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms</text>"##,
        WIDTH / 2.0,
        s.ok,
        s.failed,
        s.noresponses,
        ms(s.reply_times.p50_ns),
        ms(s.reply_times.p99_ns),
        ms(s.reply_times.max_ns)
    );

    // Panel 1: cumulative replies over time.
    axes(
        &mut out,
        TOP1,
        PLOT1_H,
        x_max,
        x_step,
        y_max,
        y_step,
        "time since publish (ms)",
        "replies received",
    );
    for (i, t) in report.tests.iter().enumerate() {
        let mut times = t.times_ns.clone();
        times.sort_unstable();
        let stride = times.len().div_ceil(MAX_POINTS).max(1);
        let mut points = format!("{LEFT:.1},{:.1}", TOP1 + PLOT1_H);
        for (k, ns) in times.iter().enumerate() {
            if k % stride == 0 || k + 1 == times.len() {
                let px = LEFT + ms(*ns) / x_max * PLOT_W;
                let py = TOP1 + PLOT1_H - (k + 1) as f64 / y_max * PLOT1_H;
                let _ = write!(points, " {px:.1},{py:.1}");
            }
        }
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"><title>test {}</title></polyline>"##,
            t.test
        );
    }
    let legend = report.tests.len().min(10);
    for (i, t) in report.tests.iter().take(legend).enumerate() {
        let y = TOP1 + 16.0 + i as f64 * 16.0;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">test {} ({} replies)</text>"##,
            LEFT + PLOT_W - 170.0,
            y - 4.0,
            LEFT + PLOT_W - 150.0,
            y - 4.0,
            LEFT + PLOT_W - 144.0,
            y,
            t.test,
            t.times_ns.len()
        );
    }
    if report.tests.len() > legend {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}">… {} more tests</text>"##,
            LEFT + PLOT_W - 170.0,
            TOP1 + 16.0 + legend as f64 * 16.0,
            report.tests.len() - legend
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">Replies over time</text>"##,
        TOP1 - 6.0
    );

    // Panel 2: histogram of arrival times.
    let bin_ms = x_max / BINS as f64;
    let mut bins = [0usize; BINS];
    for t in &report.tests {
        for ns in &t.times_ns {
            let b = ((ms(*ns) / bin_ms) as usize).min(BINS - 1);
            bins[b] += 1;
        }
    }
    let (h_max, h_step) = axis((*bins.iter().max().unwrap_or(&0) as f64).max(1.0));
    axes(
        &mut out,
        TOP2,
        PLOT2_H,
        x_max,
        x_step,
        h_max,
        h_step,
        "arrival time (ms)",
        "replies",
    );
    let bar_w = PLOT_W / BINS as f64;
    for (b, count) in bins.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        let h = *count as f64 / h_max * PLOT2_H;
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#1f77b4" stroke="white" stroke-width="0.5"><title>{:.1}–{:.1} ms: {count}</title></rect>"##,
            LEFT + b as f64 * bar_w,
            TOP2 + PLOT2_H - h,
            bar_w,
            b as f64 * bin_ms,
            (b + 1) as f64 * bin_ms
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">Arrival-time distribution (all tests, {} bins of {:.2} ms)</text>"##,
        TOP2 - 6.0,
        BINS,
        bin_ms
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(axis(2000.0), (2000.0, 500.0));
        assert!((axis(0.3).0 - 0.3).abs() < 1e-9);
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(40.0), "40");
    }

    #[test]
    fn escapes() {
        assert_eq!(esc("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
