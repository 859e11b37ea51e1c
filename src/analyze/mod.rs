//! Pure functions: facts → findings, verdicts, metrics. No driver calls, no formatting for
//! terminals; everything here is tested on CI with real recorded reports.

pub mod health;
pub mod program;
pub mod topology;
pub mod verdict;
