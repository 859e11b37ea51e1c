//! Pure functions: facts → findings, verdicts, metrics. No driver calls, no formatting for
//! terminals; everything here is tested on CI with real recorded reports.

pub mod band;
pub mod bandwidth;
pub mod compare;
pub mod faults;
pub mod fleet;
pub mod fragmentation;
pub mod health;
pub mod leaks;
pub mod live;
pub mod memory;
pub mod metric_kind;
pub mod node_health;
pub mod nvml;
pub mod program;
pub mod slurm;
pub mod thresholds;
pub mod topology;
pub mod trace_ctx;
pub mod verdict;
pub mod xid;
