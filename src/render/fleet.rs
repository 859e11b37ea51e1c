//! A [`Fleet`] as tables: the groups, then the flagged nodes worst first, one row per reason
//! (what is wrong, by how much). `--json` has everything.

use crate::analyze::fleet::{Flag, Fleet, GroupKey};
use crate::render::style::{Style, format_value};
use crate::render::text::{self, cut, short_model};

pub fn fleet(f: &Fleet, style: Style, limit: usize) -> String {
    let mut out = String::new();
    let flagged = f.flagged.len();
    out.push_str(&format!(
        "{}{} node(s) in {} group(s): {} flagged\n",
        if style.markdown { "### " } else { "" },
        f.nodes,
        f.groups.len(),
        flagged
    ));
    let mut t = style.table();
    t.set_header(["group", "GPUs", "driver", "links", "nodes", "flagged"]);
    for (i, g) in f.groups.iter().enumerate() {
        let k = &g.key;
        t.add_row([
            (i + 1).to_string(),
            format!("{}x {}", k.gpu_count, short_model(&k.gpu_model)),
            k.driver.clone(),
            links(k),
            g.nodes.to_string(),
            g.flagged.to_string(),
        ]);
    }
    style.section(&mut out, "Groups (nodes that should be identical)", t);
    if flagged == 0 {
        out.push_str("\nNo node stands out.\n");
        return out;
    }
    let mut t = style.table();
    t.set_header(["node", "grp", "what", "by how much"]);
    let shown = if limit == 0 {
        flagged
    } else {
        limit.min(flagged)
    };
    for n in &f.flagged[..shown] {
        let group = n
            .group
            .map(|g| (g + 1).to_string())
            .unwrap_or_else(|| "-".into());
        for (k, flag) in n.flags.iter().enumerate() {
            let (what, how) = describe(flag);
            // An unbreakable name wider than this would push the table past 80 columns.
            let name = if k == 0 {
                text::cut_middle(&n.node, NODE_COLUMNS)
            } else {
                String::new()
            };
            let group = if k == 0 { group.clone() } else { String::new() };
            t.add_row([name, group, what, how]);
        }
    }
    style.section(&mut out, "Flagged nodes, worst first", t);
    if shown < flagged {
        out.push_str(&format!(
            "\n{} more flagged node(s): --limit 0 shows all, --json has everything.\n",
            flagged - shown
        ));
    }
    out.push_str("\nOutlier: at least --sigmas robust deviations (1.4826 x MAD) and --min-gap\nfrom the group's median, in the worse direction. Missing: a scenario at least\nhalf of the group ran. Messages are cut here: --json has them whole.\n");
    out
}

/// Widest node name in the table (the JSON has it whole).
const NODE_COLUMNS: usize = 22;

/// The flag as (what is wrong, by how much).
fn describe(flag: &Flag) -> (String, String) {
    match flag {
        Flag::Finding(x) => {
            let what = match x.device {
                Some(i) => format!("{} gpu{i}", x.code),
                None => x.code.clone(),
            };
            (cut(&what, 24), cut(&x.message, 32))
        }
        Flag::MissingScenario {
            scenario,
            peers_ran,
            peers,
        } => (
            cut(&format!("missing {scenario}"), 24),
            format!("ran by {peers_ran} of {} in group", peers + 1),
        ),
        Flag::Outlier {
            metric,
            value,
            median,
            gap,
            ..
        } => {
            let name = metric.split_once('/').map(|(_, m)| m).unwrap_or(metric);
            (
                cut(name, 24),
                format!(
                    "{} vs median {} (-{:.1}%)",
                    short(*value),
                    short(*median),
                    gap * 100.0
                ),
            )
        }
        // The node column names the file already: the reason without its path.
        Flag::Unreadable { error } => {
            let why = error
                .split_once(": ")
                .map_or(error.as_str(), |(_, why)| why);
            ("unreadable report".into(), cut(why, 32))
        }
    }
}

/// A value in few characters: 41.2, 1,490, 0.0312.
fn short(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format_value(v.round())
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The kinds of link between the group's GPUs ("NV", "SYS/NODE"), "-" for one GPU or none known.
fn links(k: &GroupKey) -> String {
    let mut kinds: Vec<&str> = k
        .topology
        .split([';', ','])
        .filter(|c| *c != "X" && *c != "-" && !c.is_empty())
        .collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        "-".into()
    } else {
        kinds.join("/")
    }
}
