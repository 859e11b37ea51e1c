//! What `health --drain` reads from Slurm and what it did there (docs/health.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A node as `scontrol show node` describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SlurmNode {
    pub name: String,
    /// The state with its flags, as scontrol writes it: "IDLE", "IDLE+DRAIN", "DOWN+NOT_RESPONDING".
    pub state: String,
    /// The reason an administrator or a health check gave, without scontrol's "[user@time]".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SlurmNode {
    /// The state's words: base state and flags ("IDLE+DRAIN" → ["IDLE", "DRAIN"]).
    pub fn state_words(&self) -> impl Iterator<Item = &str> {
        self.state
            .split(['+', '*', '~', '#', '!', '%', '$', '@', '^'])
            .filter(|w| !w.is_empty())
    }

    pub fn has_state(&self, word: &str) -> bool {
        self.state_words().any(|w| w.eq_ignore_ascii_case(word))
    }
}

/// What `health --drain` decided for the node, and whether scontrol did it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SlurmOutcome {
    /// The node as it was before (None when it could not be read: `error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<SlurmNode>,
    /// "drain", "resume", "update_reason" or "none".
    pub action: String,
    /// The reason written with a drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why that action (or none).
    pub why: String,
    /// The scontrol command run, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// scontrol failed, or the node could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
