//! The CUDA driver shim (shim/, docs/shim.md): its configuration (`config`), the driver calls
//! it intercepts (`names`), the event lines it writes (`events`) and the ledger it keeps in a
//! shared file (`ledger`).

pub mod config;
pub mod events;
pub mod ledger;
pub mod names;
