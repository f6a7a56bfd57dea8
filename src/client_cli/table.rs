//! Plain aligned text tables for the terminal.

/// Milliseconds with two decimals from nanoseconds.
pub(super) fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// Milliseconds with two decimals from fractional nanoseconds.
pub(super) fn ms_f(ns: f64) -> String {
    format!("{:.2}", ns / 1e6)
}

/// A table: a header row and data rows, every column padded to its widest cell; the first
/// column is left-aligned, the others right-aligned.
pub(super) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("{cell:>w$}"));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned() {
        let t = render(
            &["test", "ok"],
            &[
                vec!["1".into(), "2000".into()],
                vec!["all".into(), "5".into()],
            ],
        );
        assert_eq!(t, "test    ok\n----------\n1     2000\nall      5\n");
        assert_eq!(ms(1_500_000), "1.50");
    }
}
