//! The XID catalog: what each XID the driver reports means and what NVIDIA's XID catalog says to
//! do about it (as NVSentinel ships it; /work/shared/REFERENCE.md). The one table `watch`, the
//! exporter and `health` read, so an XID gets the same meaning, action and finding code
//! everywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::report::{Severity, codes};

/// What an operator does about an XID: decides the finding code, its severity and the
/// exporter's `action` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum XidAction {
    /// The application that hit it has ended or must be restarted; the GPU is fine.
    RestartApp,
    /// Drain the GPU's work and reset it.
    ResetGpu,
    /// Drain the node and reboot it.
    RebootNode,
    /// Check the NVLinks (NVIDIA's NVLink workflow), then reset.
    CheckNvlink,
    /// Nothing at once: report it, watch for more.
    Report,
    /// Not in gpu-doctor's catalog: look it up in NVIDIA's.
    Unknown,
}

impl XidAction {
    /// The label value the exporter gives this action (`action="reset_gpu"`).
    pub fn as_str(self) -> &'static str {
        match self {
            XidAction::RestartApp => "restart_app",
            XidAction::ResetGpu => "reset_gpu",
            XidAction::RebootNode => "reboot_node",
            XidAction::CheckNvlink => "check_nvlink",
            XidAction::Report => "report",
            XidAction::Unknown => "unknown",
        }
    }

    /// The finding code for an XID with this action.
    pub fn code(self) -> &'static str {
        match self {
            XidAction::RestartApp => codes::XID_APP_ERROR,
            XidAction::ResetGpu => codes::XID_NEEDS_RESET,
            XidAction::RebootNode => codes::XID_NEEDS_REBOOT,
            XidAction::CheckNvlink => codes::XID_NVLINK_ERROR,
            XidAction::Report | XidAction::Unknown => codes::XID_OTHER,
        }
    }

    /// Node-level actions fail a report; an application's fault or a note warns.
    pub fn severity(self) -> Severity {
        match self {
            XidAction::ResetGpu | XidAction::RebootNode | XidAction::CheckNvlink => Severity::Fail,
            XidAction::RestartApp | XidAction::Report | XidAction::Unknown => Severity::Warn,
        }
    }

    /// Whether the condition lasts until someone acts on the GPU or node (a reset or reboot),
    /// rather than passing with the application that hit it.
    pub fn needs_operator(self) -> bool {
        self.severity() == Severity::Fail
    }
}

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XidInfo {
    pub xid: u64,
    /// What happened, in a few words.
    pub meaning: &'static str,
    pub action: XidAction,
    /// What to do, as a sentence.
    pub what_to_do: &'static str,
}

use XidAction::*;

const RESTART: &str =
    "Restart the application; if it recurs, debug it (compute-sanitizer). The GPU needs nothing.";
const RESET: &str = "Drain the GPU's work and reset it (nvidia-smi -r), or reboot the node.";

/// The catalog, by XID.
pub const CATALOG: &[XidInfo] = &[
    XidInfo {
        xid: 13,
        meaning: "graphics engine exception: a kernel faulted (illegal instruction, out-of-range access)",
        action: RestartApp,
        what_to_do: RESTART,
    },
    XidInfo {
        xid: 31,
        meaning: "GPU memory page fault: an application accessed an address it does not own",
        action: RestartApp,
        what_to_do: RESTART,
    },
    XidInfo {
        xid: 43,
        meaning: "GPU stopped processing an application's work after its fatal error (a trap, an assert); the GPU is fine",
        action: RestartApp,
        what_to_do: "Nothing on the GPU: the application that hit it has ended; restart it.",
    },
    XidInfo {
        xid: 45,
        meaning: "preemptive cleanup: the driver stopped a process's work after an earlier error or because the process was killed",
        action: RestartApp,
        what_to_do: "Act on the XID before it, if any; on its own nothing to do.",
    },
    XidInfo {
        xid: 46,
        meaning: "GPU stopped processing: a timeout while the GPU ran work",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 48,
        meaning: "double-bit ECC error: an uncorrectable memory error",
        action: ResetGpu,
        what_to_do: "Drain the GPU's work and reset it; then check row remapping (gpu-doctor info).",
    },
    XidInfo {
        xid: 61,
        meaning: "internal micro-controller breakpoint or warning",
        action: Report,
        what_to_do: "Collect nvidia-bug-report.sh; reset the GPU if it stops answering.",
    },
    XidInfo {
        xid: 62,
        meaning: "internal micro-controller halt",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 63,
        meaning: "a row remap or page retirement was recorded; it applies at the next reset",
        action: ResetGpu,
        what_to_do: "Drain the GPU and reset it when convenient, to apply the remap.",
    },
    XidInfo {
        xid: 64,
        meaning: "a row remap or page retirement failed",
        action: ResetGpu,
        what_to_do: "Drain the GPU and reset it; if it recurs, RMA the GPU.",
    },
    XidInfo {
        xid: 68,
        meaning: "video decoder (NVDEC) exception",
        action: RestartApp,
        what_to_do: RESTART,
    },
    XidInfo {
        xid: 74,
        meaning: "NVLink error",
        action: CheckNvlink,
        what_to_do: "Check the links (nvidia-smi nvlink -s, -e) and the fabric manager log; drain and reset the GPU, reboot if a link stays down.",
    },
    XidInfo {
        xid: 79,
        meaning: "the GPU has fallen off the bus",
        action: RebootNode,
        what_to_do: "Drain the node and reboot it; if it recurs, check the GPU's seating, power and slot.",
    },
    XidInfo {
        xid: 92,
        meaning: "high single-bit ECC error rate (corrected)",
        action: Report,
        what_to_do: "Nothing at once; watch row remapping and XIDs 48, 94, 95.",
    },
    XidInfo {
        xid: 94,
        meaning: "contained ECC error: the driver stopped the application that used the bad memory; other work is unaffected",
        action: RestartApp,
        what_to_do: "Restart the application; reset the GPU when convenient to remap the row.",
    },
    XidInfo {
        xid: 95,
        meaning: "uncontained ECC error: work on the GPU may have been corrupted",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 109,
        meaning: "context-switch timeout",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 119,
        meaning: "GSP RPC timeout: the GPU's system processor did not answer",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 120,
        meaning: "GSP error",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 140,
        meaning: "unrecoverable ECC error",
        action: ResetGpu,
        what_to_do: RESET,
    },
    XidInfo {
        xid: 154,
        meaning: "the driver's recommended recovery action changed",
        action: Report,
        what_to_do: "Read the recovery action (gpu-doctor info) and follow it.",
    },
];

/// The catalog row for `xid`, or one that says it is not in the catalog.
pub fn lookup(xid: u64) -> XidInfo {
    CATALOG
        .iter()
        .find(|i| i.xid == xid)
        .copied()
        .unwrap_or(XidInfo {
            xid,
            meaning: "not in gpu-doctor's XID catalog",
            action: Unknown,
            what_to_do: "Look it up in NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors) and check `dmesg`.",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_without_duplicates() {
        assert!(CATALOG.windows(2).all(|w| w[0].xid < w[1].xid));
    }

    #[test]
    fn actions_follow_nvidias_catalog() {
        assert_eq!(lookup(79).action, RebootNode);
        assert_eq!(lookup(48).action, ResetGpu);
        for app in [13, 31, 43, 94] {
            assert_eq!(lookup(app).action, RestartApp, "{app}");
            assert_eq!(lookup(app).action.code(), codes::XID_APP_ERROR);
        }
        assert_eq!(lookup(95).action.severity(), Severity::Fail);
        assert_eq!(lookup(74).action.code(), codes::XID_NVLINK_ERROR);
        let unknown = lookup(9999);
        assert_eq!(unknown.action, Unknown);
        assert_eq!(unknown.action.code(), codes::XID_OTHER);
    }

    #[test]
    fn every_xid_of_the_catalog_is_in_the_docs_with_its_action() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/watch.md")).unwrap();
        for i in CATALOG {
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("| {} | ", i.xid)))
                .unwrap_or_else(|| panic!("docs/watch.md has no row for XID {}", i.xid));
            assert!(row.contains(&format!("`{}`", i.action.as_str())), "{row}");
            assert!(row.contains(&format!("`{}`", i.action.code())), "{row}");
        }
    }
}
