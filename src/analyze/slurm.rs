//! What `health --drain` does to this node in Slurm, from its state and the health verdict,
//! following LBNL NHC's conventions: never touch a node that is DOWN or due for a reboot, never
//! overwrite or clear a reason someone else wrote, drain with a reason that says it is ours,
//! and return a node to service only if we drained it and only when asked (`--resume`).

use crate::facts::slurm::SlurmNode;

/// Every reason gpu-doctor writes starts with this: how it knows its own drains.
pub const REASON_PREFIX: &str = "gpu-doctor:";

/// What to do, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `scontrol update NodeName=N State=DRAIN Reason=…`.
    Drain(String),
    /// Our drain, still unhealthy but for another reason: the same command, the new reason.
    UpdateReason(String),
    /// `scontrol update NodeName=N State=RESUME`.
    Resume,
    None,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Drain(_) => "drain",
            Action::UpdateReason(_) => "update_reason",
            Action::Resume => "resume",
            Action::None => "none",
        }
    }

    /// The scontrol arguments that carry it out on `node` (none for [`Action::None`]).
    pub fn scontrol_args(&self, node: &str) -> Vec<String> {
        let mut args = vec!["update".to_string(), format!("NodeName={node}")];
        match self {
            Action::Drain(r) | Action::UpdateReason(r) => {
                args.push("State=DRAIN".into());
                args.push(format!("Reason={r}"));
            }
            Action::Resume => args.push("State=RESUME".into()),
            Action::None => return Vec::new(),
        }
        args
    }
}

/// The reason written for a problem described by `line` (the NPD one-liner: code, GPU, why).
pub fn reason(line: &str) -> String {
    format!("{REASON_PREFIX} {line}")
}

/// Whether gpu-doctor wrote this reason.
pub fn ours(reason: &str) -> bool {
    reason.starts_with(REASON_PREFIX)
}

/// The action for `node`: `problem` is the one-line description of what is wrong (None when
/// healthy); `resume` lets gpu-doctor return a node it drained.
pub fn decide(node: &SlurmNode, problem: Option<&str>, resume: bool) -> (Action, String) {
    for word in [
        "DOWN",
        "REBOOT_REQUESTED",
        "REBOOT_ISSUED",
        "REBOOT",
        "FUTURE",
    ] {
        if node.has_state(word) {
            return (
                Action::None,
                format!(
                    "the node is {}: left alone (NHC's rule: a node that is down or due for a reboot is someone else's)",
                    node.state
                ),
            );
        }
    }
    let drained =
        node.has_state("DRAIN") || node.has_state("DRAINING") || node.has_state("DRAINED");
    let current = node.reason.as_deref();
    if let Some(r) = current.filter(|r| !ours(r)) {
        return (
            Action::None,
            format!("the node has a reason gpu-doctor did not write ({r:?}): left alone"),
        );
    }
    match (problem, drained, current) {
        (Some(p), true, Some(r)) if r == reason(p) => (
            Action::None,
            "already drained by gpu-doctor for this reason".into(),
        ),
        (Some(p), true, Some(_)) => (
            Action::UpdateReason(reason(p)),
            "drained by gpu-doctor earlier; the reason changed".into(),
        ),
        (Some(p), _, _) => (Action::Drain(reason(p)), "unhealthy: drained".into()),
        (None, true, Some(_)) if resume => (
            Action::Resume,
            "healthy again, drained by gpu-doctor: resumed (--resume)".into(),
        ),
        (None, true, Some(_)) => (
            Action::None,
            "healthy again, drained by gpu-doctor: left drained (resume it with `scontrol update NodeName=… State=RESUME`, or run with --resume)".into(),
        ),
        (None, _, _) => (Action::None, "healthy".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(state: &str, reason: Option<&str>) -> SlurmNode {
        SlurmNode {
            name: "n1".into(),
            state: state.into(),
            reason: reason.map(str::to_string),
        }
    }

    const LOST: &str = "GPU_LOST gpu1: fallen off the bus";

    #[test]
    fn an_unhealthy_idle_node_is_drained_with_a_reason_that_says_it_is_ours() {
        let (a, _) = decide(&node("IDLE", None), Some(LOST), false);
        assert_eq!(
            a,
            Action::Drain("gpu-doctor: GPU_LOST gpu1: fallen off the bus".into())
        );
        assert_eq!(
            a.scontrol_args("n1"),
            [
                "update",
                "NodeName=n1",
                "State=DRAIN",
                "Reason=gpu-doctor: GPU_LOST gpu1: fallen off the bus"
            ]
        );
        let (a, _) = decide(&node("ALLOCATED", None), Some(LOST), false);
        assert_eq!(
            a.name(),
            "drain",
            "a busy node drains: its job finishes first"
        );
    }

    #[test]
    fn down_nodes_and_other_peoples_reasons_are_left_alone() {
        for n in [
            node("DOWN+NOT_RESPONDING", Some("maint")),
            node("DOWN", None),
            node("IDLE+DRAIN+REBOOT_REQUESTED", Some("gpu-doctor: X")),
            node("IDLE+DRAIN", Some("bad DIMM, ticket 42")),
            node("MIXED+DRAIN", Some("Kill task failed")),
        ] {
            for resume in [false, true] {
                assert_eq!(decide(&n, Some(LOST), resume).0, Action::None, "{n:?}");
                assert_eq!(decide(&n, None, resume).0, Action::None, "{n:?}");
            }
        }
    }

    #[test]
    fn our_drains_are_kept_updated_and_resumed_only_when_asked() {
        let ours = node("IDLE+DRAIN", Some(&reason(LOST)));
        assert_eq!(decide(&ours, Some(LOST), true).0, Action::None);
        assert_eq!(
            decide(&ours, Some("NVLINK_INACTIVE gpu0: link 3 down"), false).0,
            Action::UpdateReason("gpu-doctor: NVLINK_INACTIVE gpu0: link 3 down".into())
        );
        assert_eq!(decide(&ours, None, false).0, Action::None);
        assert_eq!(decide(&ours, None, true).0, Action::Resume);
        assert_eq!(
            Action::Resume.scontrol_args("n1"),
            ["update", "NodeName=n1", "State=RESUME"]
        );
        assert_eq!(
            decide(&node("IDLE", None), None, true).0,
            Action::None,
            "nothing to resume"
        );
    }
}
