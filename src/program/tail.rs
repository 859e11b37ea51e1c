//! Reading the shim's events while the program runs (`leak-check --snapshot-every`): only the
//! lines completed since the last read, so a long run is read once in all.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::facts::program::ShimEvent;

pub struct EventTail {
    path: PathBuf,
    offset: u64,
    /// The start of a line not yet complete at the last read.
    partial: Vec<u8>,
}

impl EventTail {
    pub fn new(path: &Path) -> EventTail {
        EventTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Events of the lines completed since the last call (unparsable lines are skipped).
    pub fn read_new(&mut self) -> Vec<ShimEvent> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return vec![];
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return vec![];
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return vec![];
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return vec![];
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        super::parse_events(&String::from_utf8_lossy(&complete)).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_each_complete_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut tail = EventTail::new(&path);
        assert!(tail.read_new().is_empty());
        write!(
            f,
            "{{\"ev\":\"start\",\"pid\":1,\"tid\":1,\"t_us\":1}}\n{{\"ev\":\"al"
        )
        .unwrap();
        let first = tail.read_new();
        assert_eq!(first.len(), 1);
        assert!(tail.read_new().is_empty(), "nothing new");
        writeln!(f, "loc\",\"pid\":1,\"tid\":1,\"t_us\":2,\"size\":5}}").unwrap();
        let second = tail.read_new();
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].ev.as_str(), second[0].size), ("alloc", Some(5)));
    }
}
