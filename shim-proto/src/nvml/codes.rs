//! NVML return codes (nvml.h `nvmlReturn_t`) the library answers or records, with their names.

pub const SUCCESS: u32 = 0;
pub const ERROR_UNINITIALIZED: u32 = 1;
pub const ERROR_INVALID_ARGUMENT: u32 = 2;
pub const ERROR_NOT_SUPPORTED: u32 = 3;
pub const ERROR_NOT_FOUND: u32 = 6;
pub const ERROR_INSUFFICIENT_SIZE: u32 = 7;
pub const ERROR_TIMEOUT: u32 = 10;
pub const ERROR_LIBRARY_NOT_FOUND: u32 = 12;
pub const ERROR_FUNCTION_NOT_FOUND: u32 = 13;
pub const ERROR_GPU_IS_LOST: u32 = 15;
pub const ERROR_UNKNOWN: u32 = 999;

/// Every `nvmlReturn_t` value and its name without the `NVML_` prefix.
pub const NAMES: &[(u32, &str)] = &[
    (0, "SUCCESS"),
    (1, "ERROR_UNINITIALIZED"),
    (2, "ERROR_INVALID_ARGUMENT"),
    (3, "ERROR_NOT_SUPPORTED"),
    (4, "ERROR_NO_PERMISSION"),
    (5, "ERROR_ALREADY_INITIALIZED"),
    (6, "ERROR_NOT_FOUND"),
    (7, "ERROR_INSUFFICIENT_SIZE"),
    (8, "ERROR_INSUFFICIENT_POWER"),
    (9, "ERROR_DRIVER_NOT_LOADED"),
    (10, "ERROR_TIMEOUT"),
    (11, "ERROR_IRQ_ISSUE"),
    (12, "ERROR_LIBRARY_NOT_FOUND"),
    (13, "ERROR_FUNCTION_NOT_FOUND"),
    (14, "ERROR_CORRUPTED_INFOROM"),
    (15, "ERROR_GPU_IS_LOST"),
    (16, "ERROR_RESET_REQUIRED"),
    (17, "ERROR_OPERATING_SYSTEM"),
    (18, "ERROR_LIB_RM_VERSION_MISMATCH"),
    (19, "ERROR_IN_USE"),
    (20, "ERROR_MEMORY"),
    (21, "ERROR_NO_DATA"),
    (22, "ERROR_VGPU_ECC_NOT_SUPPORTED"),
    (23, "ERROR_INSUFFICIENT_RESOURCES"),
    (24, "ERROR_FREQ_NOT_SUPPORTED"),
    (25, "ERROR_ARGUMENT_VERSION_MISMATCH"),
    (26, "ERROR_DEPRECATED"),
    (27, "ERROR_NOT_READY"),
    (28, "ERROR_GPU_NOT_FOUND"),
    (29, "ERROR_INVALID_STATE"),
    (999, "ERROR_UNKNOWN"),
];

/// `ERROR_NOT_SUPPORTED` for 3; `UNKNOWN_RETURN_CODE` for a code nvml.h does not list.
pub fn name(rc: u32) -> &'static str {
    NAMES
        .iter()
        .find(|(c, _)| *c == rc)
        .map(|(_, n)| *n)
        .unwrap_or("UNKNOWN_RETURN_CODE")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(15), "ERROR_GPU_IS_LOST");
        assert_eq!(
            super::name(super::ERROR_NOT_SUPPORTED),
            "ERROR_NOT_SUPPORTED"
        );
        assert_eq!(super::name(12345), "UNKNOWN_RETURN_CODE");
    }
}
