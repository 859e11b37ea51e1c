//! Typed errors that carry their exit code. main.rs is the only place that turns them into one.

use thiserror::Error;

/// Documented exit codes (README, `--help`).
pub mod exit {
    /// No failing finding.
    pub const OK: i32 = 0;
    /// A failing finding, a failed scenario, or (compare) a regression.
    pub const FAIL: i32 = 1;
    /// Usage or input error: bad flag, bad device, malformed suite or report.
    pub const USAGE: i32 = 2;
    /// Cannot run here: no NVIDIA driver library, no GPU, device not found, driver too old.
    pub const UNAVAILABLE: i32 = 3;
    /// Internal error (a bug in gpu-doctor).
    pub const INTERNAL: i32 = 4;
    /// Interrupted by Ctrl-C (shell convention 128 + SIGINT).
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Error)]
pub enum DoctorError {
    /// The box cannot serve the request: missing library, no GPU, unknown device.
    #[error("{0}")]
    Unavailable(String),
    /// The user's input is wrong: device list, suite file, report file.
    #[error("{0}")]
    Input(String),
}

impl DoctorError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DoctorError::Unavailable(_) => exit::UNAVAILABLE,
            DoctorError::Input(_) => exit::USAGE,
        }
    }
}

pub fn unavailable(msg: impl Into<String>) -> anyhow::Error {
    DoctorError::Unavailable(msg.into()).into()
}

pub fn input(msg: impl Into<String>) -> anyhow::Error {
    DoctorError::Input(msg.into()).into()
}

/// Exit code for any error: typed ones carry theirs, anything else is internal.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<DoctorError>())
        .map(DoctorError::exit_code)
        .unwrap_or(exit::INTERNAL)
}
