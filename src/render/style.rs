//! How tables look: one [`Style`] per rendering (a terminal with or without colour, or
//! Markdown), the cells that carry a status, and number formatting shared by every renderer.

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, Width};

use super::text;
use crate::report::{Severity, Status};
pub use crate::units::format_value;

/// The width a terminal rendering is designed for when nothing says otherwise.
pub const DEFAULT_WIDTH: usize = 80;

/// Columns of the terminal on stdout (TIOCGWINSZ); None when stdout is no terminal or it
/// cannot say.
pub fn terminal_columns() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize we own; a failure leaves it zeroed.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// Columns output is designed for: the terminal's on stdout; when stdout is not a terminal,
/// `COLUMNS`; else [`DEFAULT_WIDTH`].
pub fn output_width() -> usize {
    use std::io::IsTerminal;
    let from_env = || {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|&c| c > 0)
    };
    let tty = std::io::stdout()
        .is_terminal()
        .then(terminal_columns)
        .flatten();
    tty.or_else(from_env).unwrap_or(DEFAULT_WIDTH)
}

/// Styling choices for one rendering.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    /// GitHub-flavoured Markdown (CI job summaries) instead of terminal tables.
    pub markdown: bool,
    /// Columns to fit in (terminal only); None: as wide as the content.
    pub width: Option<usize>,
    /// Every row (each NVLink, each P2P pair, each failed call) instead of summaries.
    pub verbose: bool,
}

impl Style {
    /// Terminal tables, with or without colour, [`DEFAULT_WIDTH`] columns wide.
    pub fn terminal(color: bool) -> Style {
        Style {
            color,
            markdown: false,
            width: Some(DEFAULT_WIDTH),
            verbose: false,
        }
    }

    /// Markdown tables and headings.
    pub fn markdown() -> Style {
        Style {
            color: false,
            markdown: true,
            width: None,
            verbose: false,
        }
    }

    /// The same style, fitting `width` columns (None: no limit).
    pub fn with_width(self, width: Option<usize>) -> Style {
        Style { width, ..self }
    }

    /// The same style, summaries replaced by every row.
    pub fn with_verbose(self, verbose: bool) -> Style {
        Style { verbose, ..self }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new();
        if self.markdown {
            t.load_style(ASCII_MARKDOWN).force_no_tty();
            return t;
        }
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if let Some(w) = self.width {
            t.set_width(w.min(u16::MAX as usize) as u16);
        }
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t
    }

    /// A titled table: a line above it on a terminal, a heading in Markdown. On a terminal the
    /// table fits the width and no cell is broken inside a word (a code, a UUID, a bus id): see
    /// [`fit_columns`].
    pub fn section(&self, out: &mut String, title: &str, mut table: Table) {
        if let (false, Some(w)) = (self.markdown, self.width) {
            fit_columns(&mut table, w);
        }
        if self.markdown {
            table = markdown_cells(&table);
        }
        match (self.markdown, title.is_empty()) {
            (true, false) => out.push_str(&format!("\n#### {title}\n\n{table}\n")),
            (true, true) => out.push_str(&format!("\n{table}\n")),
            (false, false) => out.push_str(&format!("\n{}\n{table}\n", self.wrap(title, 2))),
            (false, true) => out.push_str(&format!("\n{table}\n")),
        }
    }

    /// Prose wrapped to the width (continuation lines indented by `indent`); as is in
    /// Markdown.
    pub fn wrap(&self, text: &str, indent: usize) -> String {
        if self.markdown {
            text.to_string()
        } else {
            text::wrap(text, self.width, indent)
        }
    }

    /// A paragraph under the tables (notes, hints): wrapped, with a line break after it (a
    /// blank line in Markdown, where consecutive lines would run together).
    pub fn para(&self, out: &mut String, text: &str, indent: usize) {
        if self.markdown {
            out.push_str(text.trim_start());
            out.push_str("\n\n");
        } else {
            out.push_str(&self.wrap(text, indent));
            out.push('\n');
        }
    }

    pub fn status_cell(&self, s: Status) -> Cell {
        let c = Cell::new(s.as_str().to_uppercase());
        if !self.color {
            return c;
        }
        c.fg(match s {
            Status::Pass => Color::Green,
            Status::Warn => Color::Yellow,
            Status::Fail | Status::Error => Color::Red,
            Status::Skipped => Color::Grey,
        })
    }

    pub fn severity_cell(&self, s: Severity) -> Cell {
        self.severity_colored(s, s.as_str())
    }

    /// `text` in the colour of severity `s` (a finding's code where its severity is implied).
    pub fn severity_colored(&self, s: Severity, text: &str) -> Cell {
        let c = Cell::new(text);
        if !self.color {
            return c;
        }
        c.fg(match s {
            Severity::Info => Color::Cyan,
            Severity::Warn => Color::Yellow,
            Severity::Fail => Color::Red,
        })
    }

    pub fn ok_cell(&self, ok: bool) -> Cell {
        let c = Cell::new(if ok { "ok" } else { "MISMATCH" });
        if !self.color {
            return c;
        }
        c.fg(if ok { Color::Green } else { Color::Red })
    }
}

/// The same table with each cell on one line: a line break inside a cell would end the
/// Markdown row, so it becomes `<br>` (which GitHub renders as one).
fn markdown_cells(table: &Table) -> Table {
    let one_line = |row: &comfy_table::Row| -> Vec<String> {
        row.cell_iter()
            .map(|c| c.content().replace('\n', "<br>"))
            .collect()
    };
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN).force_no_tty();
    if let Some(h) = table.header() {
        t.set_header(one_line(h));
    }
    for row in table.row_iter() {
        t.add_row(one_line(row));
    }
    t
}

/// Lays out `table` to fit `width` columns without breaking a word: each column gets at
/// least its longest word (a code, a UUID, a bus id), the space left is shared out up to each
/// column's content, and comfy-table wraps at spaces within those widths. When the words alone
/// do not fit, the table is wider than `width` rather than broken inside a word.
fn fit_columns(table: &mut Table, width: usize) {
    let n = table.column_count();
    if n == 0 {
        return;
    }
    let max: Vec<usize> = table
        .column_max_content_widths()
        .iter()
        .map(|&w| w as usize)
        .collect();
    let min: Vec<usize> = (0..n)
        .map(|i| {
            table
                .column_cells_with_header_iter(i)
                .flatten()
                .flat_map(|c| {
                    c.content()
                        .split([' ', '\n'])
                        .map(text::width)
                        .collect::<Vec<_>>()
                })
                .max()
                .unwrap_or(1)
                .clamp(1, max[i].max(1))
        })
        .collect();
    // Borders (n + 1) and one space of padding each side of every column.
    let avail = width.saturating_sub(3 * n + 1);
    if max.iter().sum::<usize>() <= avail {
        return;
    }
    // The space left goes to the columns in proportion to how much more they hold than their
    // longest word: prose columns widen, identifier columns stay at their word.
    let mut w = min;
    let rest = avail.saturating_sub(w.iter().sum());
    let wants: Vec<usize> = (0..n).map(|i| max[i] - w[i]).collect();
    let total: usize = wants.iter().sum();
    if total > 0 {
        let mut given = 0;
        for i in 0..n {
            let add = (rest * wants[i])
                .checked_div(total)
                .unwrap_or(0)
                .min(wants[i]);
            w[i] += add;
            given += add;
        }
        // Rounding leftovers, one column at a time, to those that still want some.
        let mut left = rest.saturating_sub(given);
        while left > 0 {
            let Some(i) = (0..n)
                .filter(|&i| w[i] < max[i])
                .max_by_key(|&i| max[i] - w[i])
            else {
                break;
            };
            w[i] += 1;
            left -= 1;
        }
    }
    for (i, w) in w.into_iter().enumerate() {
        if let Some(col) = table.column_mut(i) {
            let padded = (w + 2).min(u16::MAX as usize) as u16;
            col.set_constraint(ColumnConstraint::Absolute(Width::Fixed(padded)));
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn values_are_readable() {
        use crate::units::format_value;
        assert_eq!(format_value(84_362_000_000.0), "84,362,000,000");
        assert_eq!(format_value(-1200.0), "-1,200");
        assert_eq!(format_value(0.99992), "1.000");
        assert_eq!(format_value(54.31), "54.310");
    }
}
