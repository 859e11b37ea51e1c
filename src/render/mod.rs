//! Rendering: a report → text. No analysis here: renderers only read what the report holds.

pub mod chrome_trace;
pub mod compare;
pub mod junit;
pub mod program;
pub mod sections;
pub mod table;
