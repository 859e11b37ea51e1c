//! How tables look: one [`Style`] per rendering (colour or not), the cells that carry a
//! status, and number formatting shared by every renderer.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};

use crate::report::{Severity, Status};
pub use crate::units::format_value;

/// Styling choices for one rendering.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t
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
