//! Event lines the shim writes (one JSON object per line) — encoded into a fixed stack buffer,
//! without allocating, so it is safe from any hook. gpu-doctor parses them with serde
//! (src/program/mod.rs), and its tests encode lines with this encoder to check both sides agree.
//!
//! Every event has `ev`, `pid`, `tid` (OS thread id) and `t_us` (CLOCK_MONOTONIC, µs).
//! - `start`: the shim loaded into a process (`exe`, `ppid`, `config_error` if any).
//! - `hook`: a variant was wrapped for the first time on a path (`call`, `via`: dlsym, proc,
//!   link; `match`: identity or version rule).
//! - `nomatch`: cuGetProcAddress answered a pointer for a base name the shim knows but it
//!   matched no variant: handed out unwrapped (`call`, `version`, `flags`).
//! - `fail`: an intercepted call returned an error (`call`, `code`, `injected`, `ctx`, and for
//!   allocations `size`, `dev`, `used`).
//! - `delay`: a scheduled delay (`call`, `delay_us`).
//! - `ctx`: a context operation (`call`, `code`, `ctx_before`, `ctx_after`, `ctx`, `dev`).
//! - `peak`: device memory held grew to a new peak (`dev`, `bytes`).
//! - `stats`: at exit, calls per variant (`calls`: {name: count}), `injected_total` failures,
//!   `dropped` events (over the caps), `ctx_noops` (cuCtxSetCurrent of the current context).
//!   The same figures live in the process's ledger (`ledger`) while it runs, for processes
//!   that end without exit handlers.
//!
//! With `leaks=1` (`leak-check`):
//! - `alloc`: an allocation succeeded (`call`, `ptr` for device pointers or `handle` for
//!   cuMemCreate, `size`, `dev`, `ctx`, `bt`: return addresses, innermost first, the shim's own
//!   frames left out, `maps`: the sequence number of the /proc/self/maps copy they resolve in).
//! - `free`: a free succeeded (`call`, `ptr` or `handle`, and `size`, `dev` when the shim knew
//!   the allocation).
//! - `reserve` / `unreserve`: cuMemAddressReserve / cuMemAddressFree (`ptr`, `size`; `bt`,
//!   `maps` on reserve).
//! - `map` / `unmap`: cuMemMap (`ptr`, `size`, `offset`, `handle`, `bt`, `maps`) / cuMemUnmap
//!   (`ptr`, `size`).
//! - `ctx` events of context creation and teardown (as with `trace=1`, without the others).
//! - `pool`: written by gpu-doctor's Python hook at interpreter exit, not by the shim: what a
//!   framework's caching allocator held (`framework`, `dev`, `in_use`, `reserved`) `phase`
//!   `before` and `after` it released its cache (the frees in between are the cache's).

/// A JSON line under construction in a fixed buffer; too-long lines are cut at a field
/// boundary and still closed (fields past the cut are lost, the line stays valid JSON).
pub struct Line {
    buf: [u8; 4096],
    len: usize,
    overflow: bool,
    first: bool,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

const RESERVE: usize = 4; // room for "}\n" and a nested "}"

impl Line {
    pub fn new() -> Self {
        let mut l = Line {
            buf: [0; 4096],
            len: 0,
            overflow: false,
            first: true,
        };
        l.raw("{");
        l
    }

    fn raw(&mut self, s: &str) {
        let b = s.as_bytes();
        if self.overflow || self.len + b.len() > self.buf.len() - RESERVE {
            self.overflow = true;
            return;
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn key(&mut self, k: &str) -> usize {
        let mark = self.len;
        if !self.first {
            self.raw(",");
        }
        self.first = false;
        self.raw("\"");
        self.raw(k);
        self.raw("\":");
        mark
    }

    /// Undo a field that did not fit.
    fn settle(&mut self, mark: usize) {
        if self.overflow {
            self.len = mark;
        }
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let m = self.key(k);
        self.raw("\"");
        for c in v.chars() {
            match c {
                '"' => self.raw("\\\""),
                '\\' => self.raw("\\\\"),
                c if (c as u32) < 0x20 => {
                    let c = c as usize;
                    let b = [b'\\', b'u', b'0', b'0', HEX[c >> 4], HEX[c & 15]];
                    self.raw(core::str::from_utf8(&b).unwrap_or(""));
                }
                c => {
                    let mut b = [0u8; 4];
                    self.raw(c.encode_utf8(&mut b));
                }
            }
        }
        self.raw("\"");
        self.settle(m);
        self
    }

    /// `v` in base 10 or 16, most significant digit first.
    fn digits(&mut self, mut v: u64, radix: u64) {
        let mut tmp = [0u8; 20];
        let mut n = tmp.len();
        loop {
            n -= 1;
            tmp[n] = HEX[(v % radix) as usize];
            v /= radix;
            if v == 0 {
                break;
            }
        }
        self.raw(core::str::from_utf8(&tmp[n..]).unwrap_or("0"));
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        let m = self.key(k);
        self.digits(v, 10);
        self.settle(m);
        self
    }

    pub fn i64(&mut self, k: &str, v: i64) -> &mut Self {
        let m = self.key(k);
        if v < 0 {
            self.raw("-");
        }
        self.digits(v.unsigned_abs(), 10);
        self.settle(m);
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        let m = self.key(k);
        self.raw(if v { "true" } else { "false" });
        self.settle(m);
        self
    }

    /// A pointer-sized handle as a "0x…" string (contexts): JSON numbers lose bits past 2^53.
    pub fn hex(&mut self, k: &str, v: u64) -> &mut Self {
        let m = self.key(k);
        self.raw("\"0x");
        self.digits(v, 16);
        self.raw("\"");
        self.settle(m);
        self
    }

    /// An array of "0x…" strings (return addresses).
    pub fn hex_array(&mut self, k: &str, v: &[u64]) -> &mut Self {
        let m = self.key(k);
        self.raw("[");
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.raw("\"0x");
            self.digits(*x, 16);
            self.raw("\"");
        }
        self.raw("]");
        self.settle(m);
        self
    }

    /// Opens a nested object under `k`; close it with [`Line::end_object`].
    pub fn begin_object(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.raw("{");
        self.first = true;
        self
    }

    pub fn end_object(&mut self) -> &mut Self {
        // Room for this brace is kept by RESERVE even when the buffer is full.
        self.buf[self.len] = b'}';
        self.len += 1;
        self.first = false;
        self
    }

    /// Closes the line: `}` and a newline. Returns the bytes to write in one `write`.
    pub fn finish(&mut self) -> &[u8] {
        self.buf[self.len] = b'}';
        self.buf[self.len + 1] = b'\n';
        self.len += 2;
        &self.buf[..self.len]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &mut Line) -> String {
        String::from_utf8(l.finish().to_vec()).unwrap()
    }

    #[test]
    fn encodes_fields() {
        let mut l = Line::new();
        l.str("ev", "fail")
            .u64("pid", 42)
            .i64("dev", -1)
            .bool("injected", true)
            .hex("ctx", 0xdead_beef)
            .u64("zero", 0)
            .u64("max", u64::MAX);
        assert_eq!(
            text(&mut l),
            "{\"ev\":\"fail\",\"pid\":42,\"dev\":-1,\"injected\":true,\"ctx\":\"0xdeadbeef\",\"zero\":0,\"max\":18446744073709551615}\n"
        );
    }

    #[test]
    fn encodes_arrays() {
        let mut l = Line::new();
        l.hex_array("bt", &[0x10, 0xabc]).hex_array("none", &[]);
        assert_eq!(text(&mut l), "{\"bt\":[\"0x10\",\"0xabc\"],\"none\":[]}\n");
        let mut l = Line::new();
        l.str("ev", "alloc").hex_array("bt", &[u64::MAX; 400]);
        let t = text(&mut l);
        assert_eq!(
            t, "{\"ev\":\"alloc\"}\n",
            "an array that does not fit is left out"
        );
    }

    #[test]
    fn escapes_strings_and_nests() {
        let mut l = Line::new();
        l.str("exe", "a\"b\\c\nd")
            .begin_object("calls")
            .u64("x", 1)
            .u64("y", 2)
            .end_object()
            .u64("after", 3);
        assert_eq!(
            text(&mut l),
            "{\"exe\":\"a\\\"b\\\\c\\u000ad\",\"calls\":{\"x\":1,\"y\":2},\"after\":3}\n"
        );
    }

    #[test]
    fn overflow_keeps_the_line_closed() {
        let mut l = Line::new();
        l.str("ev", "stats").begin_object("calls");
        let long = "x".repeat(300);
        for i in 0..40 {
            l.u64(&format!("{long}{i}"), i);
        }
        l.end_object();
        let t = text(&mut l);
        assert!(t.len() <= 4096);
        assert!(t.ends_with("}}\n"), "{}", &t[t.len() - 20..]);
        assert!(t.contains("\"ev\":\"stats\""));
    }
}
