//! `fleet`: many nodes' reports, grouped by what should make nodes identical (GPU model, GPU
//! count, driver, topology), and the nodes that stand out in their group — failing findings,
//! scenarios their peers ran and they did not, metrics far from the group's median by a robust
//! rule (median absolute deviation, with a minimum relative gap). Pure: `crate::fleet` reads
//! the files.
//!
//! What is kept of a report is [`NodeSummary`]: its group, its failing findings, the scenarios
//! it ran and one number per metric. Memory grows with the metric set, not the reports' size
//! (a CI suite report is ~110 KB of steps and samples; its summary a few hundred bytes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analyze::metric_kind;
use crate::report::{Better, Finding, Metric, MetricKind, Severity, Spread, Status};

/// The parts of a report `fleet` reads; everything else (steps, samples, most of `data`) is
/// skipped by the parser without being built.
#[derive(Debug, Deserialize)]
pub struct ReportView {
    pub schema_version: u32,
    #[serde(default)]
    pub host: HostView,
    pub scenario: String,
    pub status: Status,
    #[serde(default)]
    pub devices: Vec<DeviceView>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub metrics: BTreeMap<String, Metric>,
    #[serde(default)]
    pub data: Option<DataView>,
    #[serde(default)]
    pub reports: Vec<ReportView>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HostView {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub driver_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeviceView {
    #[serde(default)]
    pub name: String,
}

/// The topology matrix (`topo` and `health` store it as `data.view`).
#[derive(Debug, Default, Deserialize)]
pub struct DataView {
    #[serde(default)]
    pub view: Option<TopoMatrix>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TopoMatrix {
    #[serde(default)]
    pub matrix: Vec<Vec<String>>,
}

/// What makes nodes comparable: same GPUs, as many, same driver, same topology shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    pub gpu_model: String,
    pub gpu_count: u32,
    pub driver: String,
    /// The `topo -m` matrix with NVLink bonds as `NV` (a node with one link down stays with its
    /// peers; its NVLINK_INACTIVE finding flags it), rows joined by `;`; "-" when no report of
    /// the node has a topology.
    pub topology: String,
}

/// A failing finding of a node, with the scenario that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFinding {
    pub scenario: String,
    pub code: String,
    #[serde(default)]
    pub device: Option<u32>,
    pub message: String,
}

/// What `fleet` keeps of one node's report.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSummary {
    pub node: String,
    pub source: String,
    pub group: GroupKey,
    pub failing: Vec<NodeFinding>,
    /// Scenarios that ran (not skipped), sorted.
    pub scenarios: Vec<String>,
    /// (`scenario/metric`, value, how it is judged). Names are shared between nodes once
    /// [`Interner::intern`] has seen them.
    pub metrics: Vec<(Arc<str>, f64, MetricInfo)>,
}

/// How a metric is judged: which way is better, how stable it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricInfo {
    pub better: Better,
    pub kind: MetricKind,
}

/// At most this many failing findings are kept per node (the rest are counted).
const MAX_FINDINGS: usize = 16;

/// The summary of one node's report; `source` names the file (and the node when the report has
/// no host name).
pub fn summarize(view: &ReportView, source: &str) -> NodeSummary {
    let all: Vec<&ReportView> = std::iter::once(view).chain(view.reports.iter()).collect();
    let models: Vec<&str> = view
        .devices
        .iter()
        .map(|d| d.name.as_str())
        .filter(|n| !n.is_empty() && !n.starts_with("(lost"))
        .collect();
    let gpu_model = most_common(&models).unwrap_or("-").to_string();
    let topology = all
        .iter()
        .find_map(|r| {
            r.data
                .as_ref()?
                .view
                .as_ref()
                .filter(|v| !v.matrix.is_empty())
        })
        .map(|v| topology_shape(&v.matrix))
        .unwrap_or_else(|| "-".into());
    let group = GroupKey {
        gpu_model,
        gpu_count: view.devices.len() as u32,
        driver: view
            .host
            .driver_version
            .clone()
            .unwrap_or_else(|| "-".into()),
        topology,
    };
    let mut failing = Vec::new();
    let mut scenarios = Vec::new();
    let mut metrics = Vec::new();
    // A suite's own findings and metrics come from its scenarios' (and thresholds): read the
    // scenario reports, and the suite's own findings (THRESHOLD) as the suite's.
    let runs: Vec<&ReportView> = if view.reports.is_empty() {
        vec![view]
    } else {
        view.reports.iter().collect()
    };
    for r in &runs {
        if r.status == Status::Skipped {
            continue;
        }
        scenarios.push(r.scenario.clone());
        for (name, m) in &r.metrics {
            if m.value.is_finite() {
                let (kind, _) = metric_kind::kind_of(&r.scenario, name, &[m]);
                metrics.push((
                    Arc::from(format!("{}/{name}", r.scenario)),
                    m.value,
                    MetricInfo {
                        better: m.better,
                        kind,
                    },
                ));
            }
        }
    }
    for r in all.iter() {
        for f in r.findings.iter().filter(|f| f.severity == Severity::Fail) {
            failing.push(NodeFinding {
                scenario: r.scenario.clone(),
                code: f.code.clone(),
                device: f.device,
                message: f.message.clone(),
            });
        }
        if r.status == Status::Error && !r.findings.iter().any(|f| f.severity == Severity::Fail) {
            failing.push(NodeFinding {
                scenario: r.scenario.clone(),
                code: "STATUS_ERROR".into(),
                device: None,
                message: format!("{}: the scenario stopped with an error", r.scenario),
            });
        }
    }
    failing.truncate(MAX_FINDINGS);
    scenarios.sort();
    scenarios.dedup();
    let node = if view.host.hostname.is_empty() {
        node_of_file(source)
    } else {
        view.host.hostname.clone()
    };
    NodeSummary {
        node,
        source: source.to_string(),
        group,
        failing,
        scenarios,
        metrics,
    }
}

/// The node a report file names when its report does not (`node-17.json` → `node-17`).
fn node_of_file(source: &str) -> String {
    std::path::Path::new(source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.to_string())
}

/// One copy of each metric name for the whole fleet: 10,000 nodes share their names.
#[derive(Debug, Default)]
pub struct Interner(std::collections::HashSet<Arc<str>>);

impl Interner {
    pub fn intern(&mut self, node: &mut NodeSummary) {
        for m in &mut node.metrics {
            match self.0.get(&m.0) {
                Some(shared) => m.0 = shared.clone(),
                None => {
                    self.0.insert(m.0.clone());
                }
            }
        }
    }
}

fn most_common<'a>(names: &[&'a str]) -> Option<&'a str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(n, c)| (c, std::cmp::Reverse(n)))
        .map(|(n, _)| n)
}

/// The matrix with `NV18` as `NV`: the kind of each link, not how many bonds are up.
pub fn topology_shape(matrix: &[Vec<String>]) -> String {
    matrix
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| {
                    if c.starts_with("NV") {
                        "NV"
                    } else {
                        c.as_str()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The rule for outliers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Robust standard deviations (1.4826 × MAD) a value must be from its group's median.
    pub sigmas: f64,
    /// Minimum relative gap to the median, for every metric (None: by kind, [`min_gap`]).
    pub min_gap: Option<f64>,
    /// Groups with fewer nodes than this are not judged on metrics (too few to have a median).
    pub min_peers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sigmas: 5.0,
            min_gap: None,
            min_peers: 5,
        }
    }
}

/// How far from the median a metric of this kind must be to matter, whatever the spread: a
/// rate or an exact count 5 %, a volatile path 25 %, one timed event 100 % (a rerun of the same
/// box moves those by up to 45 %: tests/fixtures/derive.py).
pub fn min_gap(kind: MetricKind) -> f64 {
    match kind {
        MetricKind::Throughput | MetricKind::Exact => 0.05,
        MetricKind::Volatile => 0.25,
        MetricKind::SingleShot => 1.0,
    }
}

/// Why a node stands out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flag {
    /// A failing finding.
    Finding(NodeFinding),
    /// A scenario most of its group ran and it did not (or skipped).
    MissingScenario {
        scenario: String,
        peers_ran: usize,
        peers: usize,
    },
    /// A metric far from its group's median, in the worse direction.
    Outlier {
        metric: String,
        value: f64,
        median: f64,
        /// Relative gap to the median, in the worse direction (0.25 = 25 % worse).
        gap: f64,
        /// How many robust standard deviations from the median (infinite when every peer
        /// measured the same).
        sigmas: f64,
        peers: usize,
    },
    /// The report could not be read.
    Unreadable { error: String },
}

impl Flag {
    /// Order of the worst: failing findings and unreadable reports, missing scenarios, then
    /// outliers by their gap.
    fn rank(&self) -> (u8, f64) {
        match self {
            Flag::Finding(_) | Flag::Unreadable { .. } => (0, 0.0),
            Flag::MissingScenario { .. } => (1, 0.0),
            Flag::Outlier { gap, .. } => (2, -gap),
        }
    }
}

/// One flagged node and every reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedNode {
    pub node: String,
    pub source: String,
    /// Index into [`Fleet::groups`] (None for an unreadable report).
    pub group: Option<usize>,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub key: GroupKey,
    pub nodes: usize,
    pub flagged: usize,
    /// Scenarios most of the group ran.
    pub scenarios: Vec<String>,
    /// Median of each metric judged in the group.
    pub medians: BTreeMap<String, f64>,
}

/// The fleet: its groups, and the nodes that stand out, worst first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    pub nodes: usize,
    pub groups: Vec<GroupSummary>,
    pub flagged: Vec<FlaggedNode>,
    pub options: Options,
}

/// Judges every node against its group. `unreadable` are (source, error) of reports that could
/// not be read: each is flagged.
pub fn analyze(nodes: &[NodeSummary], unreadable: &[(String, String)], opts: &Options) -> Fleet {
    let mut by_group: BTreeMap<&GroupKey, Vec<usize>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        by_group.entry(&n.group).or_default().push(i);
    }
    let mut flags: HashMap<usize, Vec<Flag>> = HashMap::new();
    let mut groups = Vec::new();
    let mut group_of = vec![0usize; nodes.len()];
    for (g, (key, members)) in by_group.iter().enumerate() {
        for &i in members {
            group_of[i] = g;
            for f in &nodes[i].failing {
                flags.entry(i).or_default().push(Flag::Finding(f.clone()));
            }
        }
        // Scenarios run by at least half of the group are expected of every member.
        let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in members {
            for s in &nodes[i].scenarios {
                *ran.entry(s).or_default() += 1;
            }
        }
        let expected: Vec<(&str, usize)> = ran
            .into_iter()
            .filter(|&(_, c)| 2 * c >= members.len() && members.len() > 1)
            .collect();
        for &i in members {
            for &(s, c) in &expected {
                if nodes[i]
                    .scenarios
                    .binary_search_by(|x| x.as_str().cmp(s))
                    .is_err()
                {
                    flags.entry(i).or_default().push(Flag::MissingScenario {
                        scenario: s.to_string(),
                        peers_ran: c,
                        peers: members.len() - 1,
                    });
                }
            }
        }
        let medians = outliers(nodes, members, opts, &mut flags);
        groups.push(GroupSummary {
            key: (*key).clone(),
            nodes: members.len(),
            flagged: 0,
            scenarios: expected.iter().map(|(s, _)| s.to_string()).collect(),
            medians,
        });
    }
    let mut flagged: Vec<FlaggedNode> = flags
        .into_iter()
        .map(|(i, mut f)| {
            f.sort_by(|a, b| {
                a.rank()
                    .partial_cmp(&b.rank())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            FlaggedNode {
                node: nodes[i].node.clone(),
                source: nodes[i].source.clone(),
                group: Some(group_of[i]),
                flags: f,
            }
        })
        .collect();
    for (source, error) in unreadable {
        flagged.push(FlaggedNode {
            node: node_of_file(source),
            source: source.clone(),
            group: None,
            flags: vec![Flag::Unreadable {
                error: error.clone(),
            }],
        });
    }
    for f in &flagged {
        if let Some(g) = f.group {
            groups[g].flagged += 1;
        }
    }
    // Worst first: by each node's worst flag, then by how many, then by name.
    flagged.sort_by(|a, b| {
        let ra = a.flags[0].rank();
        let rb = b.flags[0].rank();
        ra.partial_cmp(&rb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.flags.len().cmp(&a.flags.len()))
            .then(a.node.cmp(&b.node))
    });
    Fleet {
        nodes: nodes.len() + unreadable.len(),
        groups,
        flagged,
        options: opts.clone(),
    }
}

/// Flags the metric outliers of one group; returns the medians of the metrics judged.
fn outliers(
    nodes: &[NodeSummary],
    members: &[usize],
    opts: &Options,
    flags: &mut HashMap<usize, Vec<Flag>>,
) -> BTreeMap<String, f64> {
    let mut medians = BTreeMap::new();
    if members.len() < opts.min_peers {
        return medians;
    }
    let mut by_metric: BTreeMap<&str, Vec<(usize, f64, MetricInfo)>> = BTreeMap::new();
    for &i in members {
        for (name, v, info) in &nodes[i].metrics {
            by_metric.entry(name).or_default().push((i, *v, *info));
        }
    }
    for (name, values) in by_metric {
        if values.len() < opts.min_peers {
            continue;
        }
        let v: Vec<f64> = values.iter().map(|x| x.1).collect();
        // Every value is finite (summarize keeps no other): the spread sees them all.
        let Some(spread) = Spread::of(&v) else {
            continue;
        };
        let median = spread.median;
        let sigma = 1.4826 * spread.mad;
        medians.insert(name.to_string(), median);
        if median == 0.0 {
            continue;
        }
        for &(i, x, info) in &values {
            let worse = match info.better {
                Better::Higher => median - x,
                Better::Lower => x - median,
            };
            let gap = worse / median.abs();
            let z = if sigma > 0.0 {
                worse / sigma
            } else {
                f64::INFINITY
            };
            let needed = opts.min_gap.unwrap_or_else(|| min_gap(info.kind));
            if worse > 0.0 && gap >= needed && z >= opts.sigmas {
                flags.entry(i).or_default().push(Flag::Outlier {
                    metric: name.to_string(),
                    value: x,
                    median,
                    gap,
                    sigmas: z,
                    peers: values.len() - 1,
                });
            }
        }
    }
    medians
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, h2d: f64) -> NodeSummary {
        NodeSummary {
            node: name.into(),
            source: format!("{name}.json"),
            group: GroupKey {
                gpu_model: "NVIDIA H100 80GB HBM3".into(),
                gpu_count: 1,
                driver: "580.159.04".into(),
                topology: "X".into(),
            },
            failing: vec![],
            scenarios: vec!["bandwidth".into(), "info".into()],
            metrics: vec![
                (
                    Arc::from("bandwidth/h2d_pinned_gbps"),
                    h2d,
                    MetricInfo {
                        better: Better::Higher,
                        kind: MetricKind::Throughput,
                    },
                ),
                (
                    Arc::from("inject oom/time_to_edge_ms"),
                    8.0,
                    MetricInfo {
                        better: Better::Lower,
                        kind: MetricKind::SingleShot,
                    },
                ),
            ],
        }
    }

    fn peers(n: usize) -> Vec<NodeSummary> {
        (0..n)
            .map(|i| node(&format!("n{i:03}"), 55.0 + (i % 7) as f64 * 0.1))
            .collect()
    }

    #[test]
    fn one_slow_node_among_63_twins_is_flagged_with_its_gap() {
        let mut nodes = peers(64);
        nodes[17] = node("n017", 41.0);
        let f = analyze(&nodes, &[], &Options::default());
        assert_eq!(f.flagged.len(), 1, "{:#?}", f.flagged);
        assert_eq!(f.flagged[0].node, "n017");
        match &f.flagged[0].flags[0] {
            Flag::Outlier {
                metric,
                value,
                median,
                gap,
                peers,
                ..
            } => {
                assert_eq!(metric, "bandwidth/h2d_pinned_gbps");
                assert_eq!((*value, *median, *peers), (41.0, 55.3, 63));
                assert!((gap - (55.3 - 41.0) / 55.3).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_faster_node_a_small_gap_and_a_small_group_are_not_outliers() {
        let mut nodes = peers(64);
        nodes[3] = node("n003", 70.0);
        nodes[4] = node("n004", 54.0);
        assert!(analyze(&nodes, &[], &Options::default()).flagged.is_empty());
        let mut few = peers(4);
        few[0] = node("n000", 20.0);
        assert!(
            analyze(&few, &[], &Options::default()).flagged.is_empty(),
            "4 nodes have no median to speak of"
        );
        let tight = Options {
            min_gap: Some(0.01),
            sigmas: 3.0,
            ..Default::default()
        };
        let f = analyze(&nodes, &[], &tight);
        assert_eq!(
            f.flagged
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>(),
            ["n004"]
        );
    }

    #[test]
    fn failing_findings_and_missing_scenarios_are_flagged_worst_first() {
        let mut nodes = peers(10);
        nodes[2].scenarios.retain(|s| s != "bandwidth");
        nodes[2].metrics.retain(|m| !m.0.starts_with("bandwidth/"));
        nodes[5].failing.push(NodeFinding {
            scenario: "topo".into(),
            code: "PCIE_WIDTH_DEGRADED".into(),
            device: Some(0),
            message: "x8".into(),
        });
        nodes[7] = node("n007", 30.0);
        let mut other = node("other", 10.0);
        other.group.driver = "550.54.15".into();
        nodes.push(other);
        let f = analyze(
            &nodes,
            &[("bad.json".into(), "not valid JSON".into())],
            &Options::default(),
        );
        let order: Vec<&str> = f.flagged.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(
            order,
            ["bad", "n005", "n002", "n007"],
            "the other driver is its own group of one"
        );
        assert!(
            matches!(&f.flagged[2].flags[0], Flag::MissingScenario { scenario, peers_ran: 9, peers: 9 } if scenario == "bandwidth")
        );
        assert_eq!(f.groups.len(), 2);
        assert_eq!(f.nodes, 12);
    }

    #[test]
    fn topology_shapes_ignore_how_many_bonds_are_up() {
        let m = |a: &str| {
            vec![
                vec!["X".to_string(), a.to_string()],
                vec![a.to_string(), "X".to_string()],
            ]
        };
        assert_eq!(topology_shape(&m("NV18")), "X,NV;NV,X");
        assert_eq!(topology_shape(&m("NV17")), topology_shape(&m("NV18")));
        assert_ne!(topology_shape(&m("SYS")), topology_shape(&m("NV18")));
    }
}
