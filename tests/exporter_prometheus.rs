//! The exporter through real components, on a replayed machine with injected faults (an NVLink
//! down on GPU 0, XID 79 on GPU 1): scraped over HTTP; checked by `promtool check metrics`; a
//! real Prometheus server (Debian package `prometheus`, installed by .ci/run) scraping it on
//! loopback, with the shipped alert rules loaded, answering PromQL for the finding and the XID
//! counter; the rules' unit tests under `promtool test rules`; the DaemonSet read by a real YAML
//! parser (PyYAML). Every process a test starts is stopped when it ends.

mod common;
mod live_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use live_support::*;
use serde_json::Value;

const FAULTS: [&str; 4] = ["--fault", "nvlink-down=3@gpu0", "--fault", "xid=79@gpu1+1s"];

fn replay_with_faults() -> Vec<String> {
    let mut v = vec!["--replay".to_string(), snapshot()];
    v.extend(FAULTS.iter().map(|s| s.to_string()));
    v
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_exporter_serves_findings_and_xids_of_a_faulted_replay() {
    let before = replay_with_faults();
    let (_exporter, addr) = start_exporter(&as_strs(&before), &[]);
    // XID 79 arrives 1 s after NVML starts in the exporter: scrape until it is counted.
    let text = poll(Duration::from_secs(20), "the XID counted", || {
        let r = get(&addr, "/metrics", None);
        assert_eq!(r.status, 200);
        r.body.contains(r#"xid="79""#).then_some(r.body)
    });
    let xid = samples(&text, "gpu_doctor_xid_errors_total{");
    assert_eq!(xid.len(), 1, "{xid:?}");
    assert!(
        xid[0].contains(r#"gpu="1""#)
            && xid[0].contains(r#"action="reboot_node""#)
            && value(xid[0]) == 1.0,
        "{}",
        xid[0]
    );
    for finding in [
        r#"gpu_doctor_finding{code="NVLINK_INACTIVE",severity="fail",gpu="0"}"#,
        r#"gpu_doctor_finding{code="XID_NEEDS_REBOOT",severity="fail",gpu="1"}"#,
    ] {
        let line = samples(&text, finding);
        assert!(
            line.len() == 1 && value(line[0]) == 1.0,
            "no {finding} at 1 in\n{text}"
        );
    }
    let link3 = samples(&text, "gpu_doctor_nvlink_up{gpu=\"0\"");
    assert!(
        link3
            .iter()
            .any(|l| l.contains(r#"link="3"}"#) && value(l) == 0.0),
        "{link3:?}"
    );
    let up = samples(&text, "gpu_doctor_gpu_up{");
    assert_eq!(up.len(), 2);
    assert!(
        up.iter()
            .all(|l| l.contains("model_name=\"NVIDIA H200\"") && value(l) == 1.0)
    );
    let info = samples(&text, "gpu_doctor_info{");
    assert!(
        info[0].contains(r#"driver_version="580.159.04""#)
            && info[0].contains(r#"cuda_driver_version="13.0""#),
        "{info:?}"
    );

    // A Prometheus server asks for OpenMetrics and gets it.
    let om = get(
        &addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(
        om.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(
        om.body
            .contains("# UNIT gpu_doctor_temperature_celsius celsius")
    );

    assert_eq!(get(&addr, "/healthz", None).body, "ok\n");
    assert_eq!(get(&addr, "/nope", None).status, 404);
}

#[test]
fn a_lost_gpu_never_fails_a_scrape() {
    let before = ["--replay", &snapshot(), "--fault", "gpu-lost@gpu1"].map(String::from);
    let (_exporter, addr) = start_exporter(&as_strs(&before), &[]);
    let r = get(&addr, "/metrics", None);
    assert_eq!(r.status, 200);
    let lost = samples(
        &r.body,
        r#"gpu_doctor_finding{code="GPU_LOST",severity="fail",gpu="1"}"#,
    );
    assert_eq!(lost.iter().map(|l| value(l)).collect::<Vec<_>>(), [1.0]);
    let up: Vec<_> = samples(&r.body, "gpu_doctor_gpu_up{");
    assert!(
        up.iter()
            .any(|l| l.contains(r#"gpu="0""#) && value(l) == 1.0),
        "{up:?}"
    );
    assert!(
        up.iter().any(|l| l
            .starts_with(r#"gpu_doctor_gpu_up{gpu="1",uuid="",pci_bus_id="",model_name="","#)
            && value(l) == 0.0),
        "a GPU lost before the start has its index and nothing else: {up:?}"
    );
    assert!(
        !samples(&r.body, "gpu_doctor_temperature_celsius{").is_empty(),
        "GPU 0 is still read"
    );
}

#[test]
fn promtool_accepts_the_exposition_and_the_textfile() {
    need("promtool", "prometheus");
    let before = replay_with_faults();
    let out = doctor()
        .args(as_strs(&before))
        .args(["exporter", "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("gpu_doctor_finding{code=\"NVLINK_INACTIVE\""));
    let check = |input: &[u8]| {
        let mut p = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        p.stdin.take().unwrap().write_all(input).unwrap();
        let o = p.wait_with_output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, said) = check(text.as_bytes());
    assert_eq!(code, Some(0), "promtool check metrics: {said}");

    let dir = tempfile::tempdir().unwrap();
    let out = doctor()
        .args(as_strs(&before))
        .args(["exporter", "--once", "--textfile"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["gpu-doctor.prom"],
        "only the file, no temp file left"
    );
    let prom = std::fs::read(dir.path().join("gpu-doctor.prom")).unwrap();
    let (code, said) = check(&prom);
    assert_eq!(code, Some(0), "promtool check metrics (textfile): {said}");
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    need("promtool", "prometheus");
    for (command, file) in [
        ("check", "deploy/prometheus/gpu-doctor.rules.yml"),
        ("test", "deploy/prometheus/gpu-doctor.rules.test.yml"),
    ] {
        let o = Command::new("promtool")
            .args([command, "rules"])
            .arg(root().join(file))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `query` percent-encoded for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The result vector of an instant PromQL query.
fn promql(prom: &str, query: &str) -> Vec<Value> {
    let r = get(
        prom,
        &format!("/api/v1/query?query={}", encode(query)),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_real_prometheus_scrapes_the_exporter_and_promql_finds_the_finding_and_the_xid() {
    need("prometheus", "prometheus");
    let before = replay_with_faults();
    let (_exporter, addr) = start_exporter(&as_strs(&before), &[]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: gpu-doctor\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: ['{addr}']\n",
            rules = root().join("deploy/prometheus/gpu-doctor.rules.yml").display()
        ),
    )
    .unwrap();
    let prom = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _prometheus = Running::spawn(cmd, "prometheus");

    poll(Duration::from_secs(60), "Prometheus ready", || {
        std::net::TcpStream::connect(&prom).ok()?;
        (get(&prom, "/-/ready", None).status == 200).then_some(())
    });
    let target = poll(Duration::from_secs(60), "the exporter scraped", || {
        let r = get(&prom, "/api/v1/targets", None);
        let v: Value = serde_json::from_str(&r.body).ok()?;
        let t = v["data"]["activeTargets"].as_array()?.first()?.clone();
        (t["health"] == "up").then_some(t)
    });
    assert_eq!(
        target["lastError"], "",
        "Prometheus parsed the exposition: {target}"
    );

    let finding = poll(
        Duration::from_secs(60),
        "the NVLink finding in PromQL",
        || {
            let r = promql(&prom, r#"gpu_doctor_finding{code="NVLINK_INACTIVE"} == 1"#);
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(finding.len(), 1);
    assert_eq!(finding[0]["metric"]["gpu"], "0");
    assert_eq!(finding[0]["metric"]["severity"], "fail");
    assert_eq!(finding[0]["metric"]["job"], "gpu-doctor");

    let xid = poll(Duration::from_secs(60), "the XID counter in PromQL", || {
        let r = promql(
            &prom,
            r#"sum by (gpu, xid, action) (gpu_doctor_xid_errors_total)"#,
        );
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(xid.len(), 1, "{xid:?}");
    assert_eq!(xid[0]["metric"]["gpu"], "1");
    assert_eq!(xid[0]["metric"]["xid"], "79");
    assert_eq!(xid[0]["metric"]["action"], "reboot_node");
    assert_eq!(xid[0]["value"][1], "1");

    // The shipped rules load, and the XID's alert fires (it has no `for:`).
    let alerts = poll(Duration::from_secs(60), "GpuXidNeedsReboot firing", || {
        let r = get(&prom, "/api/v1/alerts", None);
        let v: Value = serde_json::from_str(&r.body).ok()?;
        let a = v["data"]["alerts"].as_array()?.clone();
        a.iter()
            .any(|a| a["labels"]["alertname"] == "GpuXidNeedsReboot" && a["state"] == "firing")
            .then_some(a)
    });
    let reboot = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "GpuXidNeedsReboot")
        .unwrap();
    assert_eq!(reboot["labels"]["gpu"], "1");
}

#[test]
fn the_daemonset_runs_the_exporter_where_prometheus_finds_it() {
    let docs = yaml_documents("deploy/kubernetes/exporter-daemonset.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "DaemonSet", "Service"]);
    let ds = &docs[1];
    assert_eq!(ds["apiVersion"], "apps/v1");
    let pod = &ds["spec"]["template"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"],
        "the selector matches the pods"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["runtimeClassName"], "nvidia");
    assert_eq!(spec["hostPID"], true);
    let c = &spec["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "exporter");
    let listen = args
        .iter()
        .find_map(|a| a.strip_prefix("--listen="))
        .expect("--listen");
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"], port);
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], port.to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "NVIDIA_DRIVER_CAPABILITIES")
            .unwrap()["value"],
        "utility"
    );
    let svc = &docs[2];
    assert_eq!(svc["spec"]["selector"], pod["metadata"]["labels"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], port);

    // The flags the DaemonSet passes are the exporter's: it starts with them (on loopback
    // here) and answers the probe path.
    let before = ["--replay".to_string(), snapshot()];
    let extra: Vec<&str> = args[1..]
        .iter()
        .copied()
        .filter(|a| !a.starts_with("--listen"))
        .collect();
    let (_exporter, addr) = start_exporter(&as_strs(&before), &extra);
    assert_eq!(get(&addr, "/healthz", None).status, 200);
}
