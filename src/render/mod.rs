//! Rendering: facts, views and reports → text. No analysis here: renderers only show what they
//! are given. `style` is how tables look; `report` the parts every report shares; one module
//! per scenario area for their own tables; `compare`, `junit` and `chrome_trace` for the other
//! outputs.

pub mod bandwidth;
pub mod chrome_trace;
pub mod compare;
pub mod exposition;
pub mod faults;
pub mod fleet;
pub mod health;
pub mod junit;
pub mod leaks;
pub mod live;
pub mod node_health;
pub mod nvml;
pub mod program;
pub mod report;
pub mod style;
pub mod text;
pub mod topo;
pub mod trace_ctx;
