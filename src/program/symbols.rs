//! `leak-check`'s call sites, resolved after the run: each return address the shim captured is
//! found in the process's maps copy (the object file mapped there and the offset into it), the
//! offset is turned into the object's own address with its ELF program headers, and addr2line
//! reads the function, file and line from the object's DWARF, or the function from its symbol
//! table. All of it here, once the program has ended: the shim only stores addresses.
//!
//! addr2line (and object, which it reads ELF with) is the pure-Rust symboliser std's own
//! backtraces use: no binutils on the GPU hosts, split and compressed debug sections handled.

use std::collections::HashMap;
use std::path::Path;

use crate::facts::leaks::{Frame, Symbols};
use crate::facts::program::{MapsCopy, ShimEvent};

/// Distinct addresses resolved at most (the rest keep their raw address).
const MAX_ADDRESSES: usize = 50_000;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset of `start` in the file.
    pub offset: u64,
    pub path: String,
}

/// The mappings of a maps copy that are files.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, _perms, offset) = (f.next()?, f.next()?, f.next()?);
            let (_dev, _inode) = (f.next()?, f.next()?);
            let path = f.collect::<Vec<_>>().join(" ");
            if !path.starts_with('/') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// The address in an ELF file's own address space of file offset `off` (its PT_LOAD).
fn file_offset_to_vaddr(path: &Path, off: u64) -> Option<u64> {
    use object::read::elf::{FileHeader, ProgramHeader};
    use std::io::Read;
    let mut head = Vec::with_capacity(64 << 10);
    std::fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_end(&mut head)
        .ok()?;
    let data = head.as_slice();
    let elf = object::elf::FileHeader64::<object::Endianness>::parse(data).ok()?;
    let endian = elf.endian().ok()?;
    for ph in elf.program_headers(endian, data).ok()? {
        if ph.p_type(endian) != object::elf::PT_LOAD {
            continue;
        }
        let (p_off, p_size) = (ph.p_offset(endian), ph.p_filesz(endian));
        if off >= p_off && off < p_off + p_size {
            return Some(off - p_off + ph.p_vaddr(endian));
        }
    }
    None
}

/// Resolves the return addresses in the events' backtraces.
pub fn resolve(events: &[ShimEvent], maps: &[MapsCopy]) -> Symbols {
    let mut by_pid: HashMap<u64, Vec<(u64, Vec<Mapping>)>> = HashMap::new();
    for m in maps {
        by_pid
            .entry(u64::from(m.pid))
            .or_default()
            .push((m.seq, parse_maps(&m.text)));
    }
    let mut objects: HashMap<String, Option<Object>> = HashMap::new();
    let mut out = Symbols::default();
    for e in events {
        let Some(bt) = &e.bt else { continue };
        for addr in bt {
            let key = (e.pid, addr.clone());
            if out.frames.contains_key(&key) {
                continue;
            }
            if out.frames.len() >= MAX_ADDRESSES {
                return out;
            }
            let frame = resolve_one(addr, e.maps, by_pid.get(&e.pid), &mut objects);
            out.frames.insert(key, frame);
        }
    }
    out
}

/// An object file opened for lookups (None in the cache: it could not be read).
struct Object {
    loader: addr2line::Loader,
}

fn resolve_one(
    addr: &str,
    seq: Option<u64>,
    copies: Option<&Vec<(u64, Vec<Mapping>)>>,
    objects: &mut HashMap<String, Option<Object>>,
) -> Frame {
    let mut frame = Frame {
        addr: addr.to_string(),
        ..Default::default()
    };
    let Some(ip) = addr
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    else {
        return frame;
    };
    // The copy the event names, else the latest before it, else any.
    let Some(copies) = copies else { return frame };
    let seq = seq.unwrap_or(u64::MAX);
    let copy = copies
        .iter()
        .filter(|(s, _)| *s <= seq)
        .max_by_key(|(s, _)| *s)
        .or_else(|| copies.last());
    let Some(m) = copy.and_then(|(_, ms)| ms.iter().find(|m| ip >= m.start && ip < m.end)) else {
        return frame;
    };
    let path = m.path.trim_end_matches(" (deleted)").to_string();
    frame.object = Some(path.clone());
    let Some(vaddr) = file_offset_to_vaddr(Path::new(&path), ip - m.start + m.offset) else {
        return frame;
    };
    frame.offset = Some(vaddr);
    let obj = objects.entry(path.clone()).or_insert_with(|| {
        addr2line::Loader::new(&path)
            .ok()
            .map(|loader| Object { loader })
    });
    if let Some(obj) = obj {
        describe(&mut frame, obj, vaddr);
    }
    frame
}

/// Function, file and line of the call before return address `vaddr`.
fn describe(frame: &mut Frame, obj: &Object, vaddr: u64) {
    // A return address follows the call: look up the byte before it.
    let probe = vaddr.saturating_sub(1);
    if let Ok(mut frames) = obj.loader.find_frames(probe)
        && let Ok(Some(f)) = frames.next()
    {
        if let Some(name) = f.function.as_ref().and_then(|n| n.demangle().ok()) {
            frame.function = Some(name.into_owned());
        }
        if let Some(loc) = f.location {
            frame.file = loc.file.map(str::to_string);
            frame.line = loc.line;
        }
    }
    if frame.function.is_none()
        && let Some(sym) = obj.loader.find_symbol(probe)
    {
        frame.function = Some(addr2line::demangle_auto(sym.into(), None).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_mappings() {
        let text = "\
5555a000-5555b000 r--p 00000000 08:01 11 /usr/bin/prog
5555b000-5555c000 r-xp 00001000 08:01 11 /usr/bin/prog
7f00-7f10 rw-p 00000000 00:00 0
7ffd-7ffe r-xp 00000000 00:00 0 [vdso]
7f10-7f20 r-xp 00002000 08:01 12 /tmp/with space.so (deleted)
";
        let m = parse_maps(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1],
            Mapping {
                start: 0x5555_b000,
                end: 0x5555_c000,
                offset: 0x1000,
                path: "/usr/bin/prog".into()
            }
        );
        assert_eq!(m[2].path, "/tmp/with space.so (deleted)");
    }

    /// This test binary's own code resolves to a function of this crate.
    #[test]
    fn resolves_an_address_of_this_process() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let here = resolves_an_address_of_this_process as *const () as u64;
        let ev = ShimEvent {
            ev: "alloc".into(),
            pid: 1,
            bt: Some(vec![format!("{:#x}", here + 1), "0x8".into()]),
            maps: Some(1),
            ..Default::default()
        };
        let copy = MapsCopy {
            pid: 1,
            seq: 1,
            text: maps,
        };
        let s = resolve(&[ev], &[copy]);
        let f = &s.frames[&(1, format!("{:#x}", here + 1))];
        assert!(
            f.function
                .as_deref()
                .is_some_and(|n| n.contains("resolves_an_address_of_this_process")),
            "{f:?}"
        );
        assert!(f.object.as_deref().is_some_and(|o| o.starts_with('/')));
        assert!(
            f.line.is_some() && f.file.as_deref().is_some_and(|p| p.ends_with("symbols.rs")),
            "{f:?}"
        );
        let unknown = &s.frames[&(1, "0x8".to_string())];
        assert_eq!(unknown.object, None);
        assert_eq!(unknown.label(), "0x8");
    }
}
