//! A real single-node Slurm cluster on localhost (Debian's slurmctld, slurmd and munge, which
//! .ci/run installs), started by this test in a private directory and stopped at its end. Its
//! slurm.conf is generated around the shipped lines (deploy/slurm/gpu-doctor.conf), and its
//! HealthCheckProgram is the shipped script running `gpu-doctor --replay SNAPSHOT [--fault …]
//! health --drain` on a replayed machine. Checked: a healthy machine stays IDLE; an NVLink
//! down drains the node with gpu-doctor's reason; a lost GPU updates that reason; healthy again
//! it stays drained, and with --resume it is returned; a reason someone else wrote is left
//! alone; a job runs through the shipped Prolog and Epilog. Every wait is bounded.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, need, repo_arg, root, within};

/// The replayed machine (one constant, to switch to a recorded one).
const SNAPSHOT: &str = common::SYNTHETIC_SNAPSHOT;
const NODE: &str = "gdnode1";
/// How long one expected state may take to appear (the health check runs every 2 s).
const WAIT: Duration = Duration::from_secs(40);

/// The daemons of the test cluster; dropping it stops them (by pid) and keeps their logs for
/// a failure message.
struct Cluster {
    dir: tempfile::TempDir,
    daemons: Vec<(&'static str, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGTERM first (slurmctld stops its slurmscriptd), SIGKILL after 5 s.
        for (_, c) in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn conf(&self) -> PathBuf {
        self.path("slurm.conf")
    }

    fn scontrol(&self, args: &[&str]) -> String {
        let out = Command::new("scontrol")
            .env("SLURM_CONF", self.conf())
            .args(args)
            .output()
            .expect("scontrol runs");
        assert!(
            out.status.success(),
            "scontrol {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// (State, Reason) of the node.
    fn node(&self) -> (String, Option<String>) {
        let text = self.scontrol(&["show", "node", NODE]);
        let state = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("State="))
            .unwrap_or("")
            .to_string();
        let reason = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Reason="))
            .map(|r| match r.rfind(" [") {
                Some(i) => r[..i].to_string(),
                None => r.to_string(),
            });
        (state, reason)
    }

    /// The replayed machine's faults and extra flags for the next health checks.
    fn set_case(&self, faults: &[&str], health_args: &str) {
        let global: Vec<String> = std::iter::once(format!("--replay {}", repo_arg(SNAPSHOT)))
            .chain(faults.iter().map(|f| format!("--fault {f}")))
            .collect();
        std::fs::write(
            self.path("gpu-doctor.env"),
            format!(
                "GPU_DOCTOR={}\nGPU_DOCTOR_GLOBAL='{}'\nGPU_DOCTOR_HEALTH_ARGS='{health_args}'\nGPU_DOCTOR_EXPECT_GPUS=2\nGPU_DOCTOR_ON_ERROR=pass\nGPU_DOCTOR_REPORT_DIR={}\n",
                assert_cmd::cargo::cargo_bin("gpu-doctor").display(),
                global.join(" "),
                self.path("reports").display()
            ),
        )
        .unwrap();
    }

    /// How many times slurmd has run the health check so far.
    fn checks_run(&self) -> usize {
        std::fs::read_to_string(self.path("checks.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Waits until `ok(state, reason)` holds after at least `runs` more health checks.
    fn wait_for(&self, what: &str, runs: usize, ok: impl Fn(&str, Option<&str>) -> bool) {
        let start = self.checks_run();
        let t0 = Instant::now();
        loop {
            let (state, reason) = self.node();
            if self.checks_run() >= start + runs && ok(&state, reason.as_deref()) {
                return;
            }
            if t0.elapsed() > WAIT {
                panic!(
                    "{what}: not within {} s (state {state}, reason {reason:?}, {} health checks since)\nlast report: {}\n{}",
                    WAIT.as_secs(),
                    self.checks_run() - start,
                    std::fs::read_to_string(self.path("reports/healthcheck.json"))
                        .unwrap_or_default()
                        .chars()
                        .take(2000)
                        .collect::<String>(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["slurmctld.log", "slurmd.log", "checks.log"] {
            let text = std::fs::read_to_string(self.path(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!(
                "--- {name} (last lines)\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }
}

fn short_hostname() -> String {
    let out = Command::new("hostname").arg("-s").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write_exec(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Waits (bounded) until `f` holds.
fn until(limit: Duration, f: impl Fn() -> bool) -> bool {
    within(limit, || f().then_some(())).is_some()
}

fn start() -> Cluster {
    for (tool, package) in [
        ("munged", "munge"),
        ("slurmctld", "slurmctld"),
        ("slurmd", "slurmd"),
        ("scontrol", "slurm-client"),
        ("srun", "slurm-client"),
    ] {
        need(tool, package);
    }
    // SAFETY-free check of root: slurmd and munged run as root here, as on a cluster node.
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the Slurm test runs as root (slurmd must)"
    );
    // /tmp, not TMPDIR: munge's socket path must be short.
    let dir = tempfile::Builder::new()
        .prefix("gd-slurm")
        .tempdir_in("/tmp")
        .unwrap();
    let mut cluster = Cluster {
        dir,
        daemons: Vec::new(),
    };
    let base = cluster.dir.path().to_path_buf();
    let p = |n: &str| base.join(n);
    for d in ["munge", "state", "spool", "reports"] {
        std::fs::create_dir_all(p(d)).unwrap();
    }
    std::fs::set_permissions(p("munge"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let key: Vec<u8> = (0..128u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ std::process::id() as u8)
        .collect();
    std::fs::write(p("munge/munge.key"), key).unwrap();
    std::fs::set_permissions(p("munge/munge.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket = p("munge/sock");
    let munged = spawn(
        Command::new("munged")
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--key-file={}", p("munge/munge.key").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", p("munge/pid").display()))
            .arg(format!("--seed-file={}", p("munge/seed").display()))
            .arg(format!("--log-file={}", p("munge.log").display())),
        &p("munged.out"),
    );
    cluster.daemons.push(("munged", munged));
    assert!(
        until(Duration::from_secs(10), || socket.exists()),
        "munged did not start: {}",
        std::fs::read_to_string(p("munged.out")).unwrap_or_default()
    );

    // The health check: the shipped script, with the test's settings and a run counter.
    write_exec(
        &p("healthcheck.sh"),
        &format!(
            "#!/bin/sh\necho \"$(date +%s.%N) $SLURMD_NODENAME\" >> {checks}\nSLURM_CONF={conf}\nGPU_DOCTOR_CONFIG={env}\nexport SLURM_CONF GPU_DOCTOR_CONFIG\nexec {script}\n",
            checks = p("checks.log").display(),
            conf = p("slurm.conf").display(),
            env = p("gpu-doctor.env").display(),
            script = root()
                .join("deploy/slurm/gpu-doctor-healthcheck.sh")
                .display()
        ),
    );
    for (name, script) in [
        ("prolog.sh", "gpu-doctor-prolog.sh"),
        ("epilog.sh", "gpu-doctor-epilog.sh"),
    ] {
        write_exec(
            &p(name),
            &format!(
                "#!/bin/sh\necho \"{name} $SLURM_JOB_ID\" >> {jobs}\nGPU_DOCTOR_CONFIG={env}\nexport GPU_DOCTOR_CONFIG\nexec {script}\n",
                jobs = p("jobs.log").display(),
                env = p("gpu-doctor.env").display(),
                script = root().join("deploy/slurm").join(script).display()
            ),
        );
    }
    cluster.set_case(&[], "");

    // The shipped slurm.conf lines, pointed at this directory, every 2 s instead of 5 min.
    let shipped = std::fs::read_to_string(root().join("deploy/slurm/gpu-doctor.conf")).unwrap();
    let ours: Vec<String> = shipped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| match l.split_once('=').unwrap() {
            ("HealthCheckProgram", _) => {
                format!("HealthCheckProgram={}", p("healthcheck.sh").display())
            }
            ("HealthCheckInterval", _) => "HealthCheckInterval=2".to_string(),
            ("Prolog", _) => format!("Prolog={}", p("prolog.sh").display()),
            ("Epilog", _) => format!("Epilog={}", p("epilog.sh").display()),
            (k, v) => format!("{k}={v}"),
        })
        .collect();
    for key in [
        "HealthCheckProgram",
        "HealthCheckInterval",
        "HealthCheckNodeState",
        "Prolog",
        "Epilog",
    ] {
        assert!(
            ours.iter().any(|l| l.starts_with(&format!("{key}="))),
            "deploy/slurm/gpu-doctor.conf sets {key}"
        );
    }
    let host = short_hostname();
    let d = |n: &str| p(n).display().to_string();
    let conf = format!(
        "ClusterName=gdtest\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={ctld}\nSlurmdPort={slurmd}\nSlurmUser=root\nSlurmdUser=root\n\
         AuthType=auth/munge\nAuthInfo=socket={sock}\nCredType=cred/munge\nStateSaveLocation={state}\nSlurmdSpoolDir={spool}\n\
         SlurmctldPidFile={ctldpid}\nSlurmdPidFile={dpid}\nSlurmctldLogFile={ctldlog}\nSlurmdLogFile={dlog}\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSwitchType=switch/none\nMpiDefault=none\nJobCompType=jobcomp/none\n\
         AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\nReturnToService=2\nSlurmdTimeout=60\n\
         {ours}\nNodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs=1 RealMemory=100 State=UNKNOWN\n\
         PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP\n",
        ctld = free_port(),
        slurmd = free_port(),
        sock = socket.display(),
        state = d("state"),
        spool = d("spool"),
        ctldpid = d("slurmctld.pid"),
        dpid = d("slurmd.pid"),
        ctldlog = d("slurmctld.log"),
        dlog = d("slurmd.log"),
        ours = ours.join("\n"),
    );
    std::fs::write(p("slurm.conf"), conf).unwrap();
    let ctld = spawn(
        Command::new("slurmctld")
            .env("SLURM_CONF", p("slurm.conf"))
            .args(["-D", "-i", "-f"])
            .arg(p("slurm.conf")),
        &p("slurmctld.out"),
    );
    cluster.daemons.push(("slurmctld", ctld));
    let ready = until(Duration::from_secs(20), || {
        Command::new("scontrol")
            .env("SLURM_CONF", p("slurm.conf"))
            .arg("ping")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP"))
    });
    assert!(
        ready,
        "slurmctld did not answer: {}\n{}",
        std::fs::read_to_string(p("slurmctld.out")).unwrap_or_default(),
        cluster.logs()
    );
    let slurmd = spawn(
        Command::new("slurmd")
            .env("SLURM_CONF", p("slurm.conf"))
            .args(["-D", "-N", NODE, "-f"])
            .arg(p("slurm.conf")),
        &p("slurmd.out"),
    );
    cluster.daemons.push(("slurmd", slurmd));
    cluster
}

#[test]
fn slurm_drains_an_unhealthy_node_with_gpu_doctors_reason_and_leaves_others_reasons_alone() {
    let c = start();
    let idle =
        |s: &str, r: Option<&str>| s.starts_with("IDLE") && !s.contains("DRAIN") && r.is_none();

    // A healthy replayed machine: the node registers and stays IDLE through health checks.
    c.wait_for("healthy: IDLE", 2, idle);
    let report = gpu_doctor::output::read_report(&c.path("reports/healthcheck.json")).unwrap();
    assert_eq!(report.scenario, "health");
    assert_eq!(
        report.data["slurm"]["action"], "none",
        "{}",
        report.data["slurm"]
    );
    assert_eq!(
        report.data["slurm"]["before"]["name"], NODE,
        "the node's name came from SLURMD_NODENAME"
    );

    // A job runs through the shipped Prolog and Epilog.
    let srun = Command::new("timeout")
        .arg("30")
        .arg("srun")
        .env("SLURM_CONF", c.conf())
        .args(["-N1", "-w", NODE, "true"])
        .output()
        .unwrap();
    assert!(
        srun.status.success(),
        "srun: {}\n{}",
        String::from_utf8_lossy(&srun.stderr),
        c.logs()
    );
    // The Epilog may still run after srun returns.
    let ran = until(Duration::from_secs(20), || {
        c.path("reports/epilog.json").exists()
    });
    let jobs = std::fs::read_to_string(c.path("jobs.log")).unwrap_or_default();
    assert!(
        ran && jobs.contains("prolog.sh") && jobs.contains("epilog.sh"),
        "{jobs}\n{}",
        c.logs()
    );
    assert!(c.path("reports/prolog.json").exists());

    // An NVLink down: drained, with a reason that says gpu-doctor and what.
    c.set_case(&["nvlink-down=3@gpu0"], "");
    c.wait_for("NVLink down: DRAIN", 1, |s, r| {
        s.contains("DRAIN") && r.is_some_and(|r| r.starts_with("gpu-doctor: NVLINK_INACTIVE gpu0"))
    });

    // A GPU lost: still drained, the reason updated.
    c.set_case(&["gpu-lost@gpu1"], "");
    c.wait_for("GPU lost: reason updated", 1, |s, r| {
        s.contains("DRAIN") && r.is_some_and(|r| r.starts_with("gpu-doctor: GPU_LOST gpu1"))
    });

    // Healthy again: gpu-doctor's drain stays until someone resumes it...
    c.set_case(&[], "");
    c.wait_for("healthy, no --resume: still drained", 2, |s, r| {
        s.contains("DRAIN") && r.is_some_and(|r| r.starts_with("gpu-doctor: GPU_LOST"))
    });
    // ... or it runs with --resume.
    c.set_case(&[], "--resume");
    c.wait_for("healthy with --resume: IDLE", 1, idle);

    // Someone else's drain: never overwritten, never resumed.
    c.scontrol(&[
        "update",
        &format!("NodeName={NODE}"),
        "State=DRAIN",
        "Reason=bad DIMM, ticket 42",
    ]);
    c.set_case(&["gpu-lost@gpu1"], "--resume");
    c.wait_for("another's reason, unhealthy: left alone", 2, |s, r| {
        s.contains("DRAIN") && r == Some("bad DIMM, ticket 42")
    });
    c.set_case(&[], "--resume");
    c.wait_for("another's reason, healthy: left alone", 2, |s, r| {
        s.contains("DRAIN") && r == Some("bad DIMM, ticket 42")
    });
    let report = gpu_doctor::output::read_report(&c.path("reports/healthcheck.json")).unwrap();
    assert!(
        report.data["slurm"]["why"]
            .as_str()
            .unwrap()
            .contains("did not write"),
        "{}",
        report.data["slurm"]
    );
}
