//! Slurm, through its own command-line client: `scontrol show node` to read this node's state
//! and reason, `scontrol update` to drain or resume it. The only code that runs scontrol;
//! what to do is decided by `analyze::slurm`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::facts::slurm::SlurmNode;

/// How long one scontrol may take: it retries an unreachable slurmctld for MessageTimeout
/// (10 s by default); slurmd kills a HealthCheckProgram after 60 s.
const SCONTROL_TIMEOUT: Duration = Duration::from_secs(20);

/// The client to run: `GPU_DOCTOR_SCONTROL` when set, else `scontrol` from PATH (slurmd runs
/// a HealthCheckProgram with an empty environment: the shipped script sets PATH).
pub const ENV_SCONTROL: &str = "GPU_DOCTOR_SCONTROL";

/// This node's name in Slurm: `explicit`, else SLURMD_NODENAME (slurmd sets it for its
/// HealthCheckProgram, Prolog and Epilog), else the short host name.
pub fn node_name(explicit: Option<&str>) -> String {
    if let Some(n) = explicit.filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    if let Ok(n) = std::env::var("SLURMD_NODENAME")
        && !n.is_empty()
    {
        return n;
    }
    let host = crate::probe::nvml::host_name();
    host.split('.').next().unwrap_or(&host).to_string()
}

/// The node's state and reason.
pub fn show_node(name: &str) -> Result<SlurmNode> {
    let out = scontrol(&["show".into(), "node".into(), name.into()])?;
    parse_show_node(name, &out)
        .ok_or_else(|| anyhow!("scontrol show node {name}: no State= in its answer"))
}

/// Runs `scontrol ARGS…` (no shell: a reason with spaces is one argument).
pub fn update(args: &[String]) -> Result<()> {
    scontrol(args).map(|_| ())
}

/// `scontrol show node NAME`'s multi-line answer: `State=` is a word of one line, `Reason=`
/// the rest of its own line, ending in "[user@time]".
pub fn parse_show_node(name: &str, text: &str) -> Option<SlurmNode> {
    let mut node = SlurmNode {
        name: name.to_string(),
        ..Default::default()
    };
    let mut seen_state = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(reason) = line.strip_prefix("Reason=") {
            let reason = match reason.rfind(" [") {
                Some(i) if reason.ends_with(']') => &reason[..i],
                _ => reason,
            };
            let reason = reason.trim();
            if !reason.is_empty() && reason != "(null)" && reason != "None" {
                node.reason = Some(reason.to_string());
            }
            continue;
        }
        for word in line.split_whitespace() {
            if let Some(s) = word.strip_prefix("State=") {
                node.state = s.to_string();
                seen_state = true;
            }
        }
    }
    seen_state.then_some(node)
}

fn scontrol(args: &[String]) -> Result<String> {
    let program = std::env::var(ENV_SCONTROL).unwrap_or_else(|_| "scontrol".into());
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("cannot run {program}: {e} (is Slurm's client on PATH?)"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if started.elapsed() > SCONTROL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow!(
                "{program} {} did not answer within {} s",
                args.join(" "),
                SCONTROL_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(anyhow!(
            "{program} {} failed ({status}): {}",
            args.join(" "),
            err.trim()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As slurm-wlm 22.05 printed it for a node drained by gpu-doctor.
    const DRAINED: &str = "NodeName=vm Arch=x86_64 CoresPerSocket=1 \n   CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=3.02\n   NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8\n   State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n   Partitions=debug \n   Reason=gpu-doctor: GPU_LOST gpu1: lost = x [root@2026-11-30T04:32:30]\n";

    #[test]
    fn state_and_reason_are_read_from_scontrols_answer() {
        let n = parse_show_node("vm", DRAINED).unwrap();
        assert_eq!(n.state, "IDLE+DRAIN");
        assert_eq!(
            n.reason.as_deref(),
            Some("gpu-doctor: GPU_LOST gpu1: lost = x")
        );
        assert!(n.has_state("drain") && n.has_state("IDLE") && !n.has_state("DOWN"));
        let idle = DRAINED
            .replace("IDLE+DRAIN", "IDLE")
            .lines()
            .filter(|l| !l.contains("Reason="))
            .collect::<Vec<_>>()
            .join("\n");
        let n = parse_show_node("vm", &idle).unwrap();
        assert_eq!((n.state.as_str(), n.reason), ("IDLE", None));
        assert!(parse_show_node("vm", "Node vm not found").is_none());
    }
}
