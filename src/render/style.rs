//! How tables look: one [`Style`] per rendering (a terminal with or without colour, or
//! Markdown), the cells that carry a status, and number formatting shared by every renderer.

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, Color, ContentArrangement, Table};

use crate::report::{Severity, Status};
pub use crate::units::format_value;

/// Styling choices for one rendering.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    /// GitHub-flavoured Markdown (CI job summaries) instead of terminal tables.
    pub markdown: bool,
}

impl Style {
    /// Terminal tables, with or without colour.
    pub fn terminal(color: bool) -> Style {
        Style {
            color,
            markdown: false,
        }
    }

    /// Markdown tables and headings.
    pub fn markdown() -> Style {
        Style {
            color: false,
            markdown: true,
        }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new();
        if self.markdown {
            t.load_style(ASCII_MARKDOWN).force_no_tty();
            return t;
        }
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t
    }

    /// A titled table: a line above it on a terminal, a heading in Markdown.
    pub fn section(&self, out: &mut String, title: &str, table: Table) {
        match (self.markdown, title.is_empty()) {
            (true, false) => out.push_str(&format!("\n#### {title}\n\n{table}\n")),
            (true, true) => out.push_str(&format!("\n{table}\n")),
            (false, false) => out.push_str(&format!("\n{title}\n{table}\n")),
            (false, true) => out.push_str(&format!("\n{table}\n")),
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
        let c = Cell::new(s.as_str());
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
