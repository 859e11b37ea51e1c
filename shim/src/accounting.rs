//! Per-device accounting of the memory a program holds, for `--limit`. Pure, unit-tested;
//! hooks/state.rs keeps one behind a mutex (allocations are rare next to launches).

use std::collections::HashMap;

/// What a live allocation is keyed by: device pointers and cuMemCreate handles are separate
/// namespaces (a handle may equal some pointer's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Ptr(u64),
    Handle(u64),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceUse {
    /// Bytes held plus bytes reserved by allocations in flight.
    pub used: u64,
    pub peak: u64,
    /// Last peak announced in an event.
    reported_peak: u64,
}

#[derive(Debug)]
pub struct Accounting {
    pub limit: u64,
    devices: Vec<(i32, DeviceUse)>,
    live: HashMap<Key, (i32, u64)>,
}

impl Accounting {
    pub fn new(limit: u64) -> Self {
        Accounting {
            limit,
            devices: Vec::new(),
            live: HashMap::new(),
        }
    }

    fn dev(&mut self, dev: i32) -> &mut DeviceUse {
        if let Some(i) = self.devices.iter().position(|(d, _)| *d == dev) {
            return &mut self.devices[i].1;
        }
        self.devices.push((dev, DeviceUse::default()));
        &mut self.devices.last_mut().expect("just pushed").1
    }

    pub fn usage(&self, dev: i32) -> DeviceUse {
        self.devices
            .iter()
            .find(|(d, _)| *d == dev)
            .map(|(_, u)| *u)
            .unwrap_or_default()
    }

    /// Every device seen, with its use.
    pub fn devices(&self) -> &[(i32, DeviceUse)] {
        &self.devices
    }

    /// Reserves `size` bytes on `dev` before the real call. Err(bytes in use) when the
    /// allocation would cross the limit: the caller answers CUDA_ERROR_OUT_OF_MEMORY.
    pub fn reserve(&mut self, dev: i32, size: u64) -> Result<(), u64> {
        let limit = self.limit;
        let u = self.dev(dev);
        match u.used.checked_add(size) {
            Some(total) if total <= limit => {
                u.used = total;
                Ok(())
            }
            _ => Err(u.used),
        }
    }

    /// The real call failed: give the reservation back.
    pub fn cancel(&mut self, dev: i32, size: u64) {
        let u = self.dev(dev);
        u.used = u.used.saturating_sub(size);
    }

    /// The real call succeeded with `actual` bytes (pitch allocations may round up what was
    /// `reserved`). Returns the new peak when it grew by at least `peak_step` since the last
    /// one returned, so the caller can report it without an event per allocation.
    pub fn commit(
        &mut self,
        key: Key,
        dev: i32,
        reserved: u64,
        actual: u64,
        peak_step: u64,
    ) -> Option<u64> {
        // A key still live means the driver reused it without our seeing the free (a free
        // through an entry point we do not intercept): forget the old one.
        if let Some((old_dev, old)) = self.live.insert(key, (dev, actual)) {
            let u = self.dev(old_dev);
            u.used = u.used.saturating_sub(old);
        }
        let u = self.dev(dev);
        u.used = u.used.saturating_sub(reserved).saturating_add(actual);
        if u.used > u.peak {
            u.peak = u.used;
        }
        if u.peak >= u.reported_peak.saturating_add(peak_step.max(1)) {
            u.reported_peak = u.peak;
            Some(u.peak)
        } else {
            None
        }
    }

    /// Forgets a live allocation before it is freed; returns (device, size) if it was known.
    pub fn remove(&mut self, key: Key) -> Option<(i32, u64)> {
        let (dev, size) = self.live.remove(&key)?;
        let u = self.dev(dev);
        u.used = u.used.saturating_sub(size);
        Some((dev, size))
    }

    /// The free failed: the allocation is still live.
    pub fn restore(&mut self, key: Key, dev: i32, size: u64) {
        self.live.insert(key, (dev, size));
        let u = self.dev(dev);
        u.used = u.used.saturating_add(size);
    }

    /// What cuMemGetInfo answers under the limit: total = min(limit, real total),
    /// free = min(real free, limit - used).
    pub fn mem_info(&self, dev: i32, real_free: u64, real_total: u64) -> (u64, u64) {
        let used = self.usage(dev).used;
        let total = self.limit.min(real_total);
        let free = real_free.min(self.limit.saturating_sub(used));
        (free, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn limit_is_per_device_and_frees_return_memory() {
        let mut a = Accounting::new(10 * MIB);
        a.reserve(0, 6 * MIB).unwrap();
        a.commit(Key::Ptr(0x1000), 0, 6 * MIB, 6 * MIB, 1);
        assert_eq!(a.reserve(0, 5 * MIB), Err(6 * MIB), "6 + 5 > 10");
        a.reserve(1, 9 * MIB).unwrap();
        a.commit(Key::Ptr(0x2000), 1, 9 * MIB, 9 * MIB, 1);
        assert_eq!(a.remove(Key::Ptr(0x1000)), Some((0, 6 * MIB)));
        a.reserve(0, 10 * MIB).unwrap();
        a.cancel(0, 10 * MIB);
        assert_eq!(a.usage(0).used, 0);
        assert_eq!(a.usage(0).peak, 6 * MIB);
        assert_eq!(a.usage(1).used, 9 * MIB);
        assert_eq!(
            a.remove(Key::Ptr(0x1000)),
            None,
            "double free is not counted twice"
        );
    }

    #[test]
    fn exactly_the_limit_fits() {
        let mut a = Accounting::new(4 * MIB);
        assert!(a.reserve(0, 4 * MIB).is_ok());
        assert_eq!(a.reserve(0, 1), Err(4 * MIB));
        assert_eq!(
            Accounting::new(1).reserve(0, u64::MAX),
            Err(0),
            "no overflow"
        );
    }

    #[test]
    fn pitch_rounding_and_handles() {
        let mut a = Accounting::new(100 * MIB);
        a.reserve(0, 10 * MIB).unwrap();
        a.commit(Key::Ptr(7), 0, 10 * MIB, 12 * MIB, 1);
        assert_eq!(a.usage(0).used, 12 * MIB);
        a.reserve(0, 2 * MIB).unwrap();
        a.commit(Key::Handle(7), 0, 2 * MIB, 2 * MIB, 1);
        assert_eq!(a.usage(0).used, 14 * MIB, "handle 7 is not pointer 7");
        assert_eq!(a.remove(Key::Handle(7)), Some((0, 2 * MIB)));
        assert_eq!(a.usage(0).used, 12 * MIB);
        a.restore(Key::Handle(7), 0, 2 * MIB);
        assert_eq!(a.usage(0).used, 14 * MIB);
    }

    #[test]
    fn peaks_are_reported_in_steps() {
        let mut a = Accounting::new(1 << 40);
        let mut reported = vec![];
        for i in 0..10u64 {
            a.reserve(0, MIB).unwrap();
            if let Some(p) = a.commit(Key::Ptr(i), 0, MIB, MIB, 4 * MIB) {
                reported.push(p / MIB);
            }
        }
        assert_eq!(reported, vec![4, 8]);
        assert_eq!(a.usage(0).peak, 10 * MIB);
    }

    #[test]
    fn mem_info_is_the_limited_view() {
        let mut a = Accounting::new(8 * MIB);
        a.reserve(0, 3 * MIB).unwrap();
        a.commit(Key::Ptr(1), 0, 3 * MIB, 3 * MIB, 1);
        assert_eq!(
            a.mem_info(0, 70_000 * MIB, 80_000 * MIB),
            (5 * MIB, 8 * MIB)
        );
        assert_eq!(a.mem_info(0, 2 * MIB, 80_000 * MIB), (2 * MIB, 8 * MIB));
        assert_eq!(
            a.mem_info(1, 70_000 * MIB, 80_000 * MIB),
            (8 * MIB, 8 * MIB)
        );
        assert_eq!(
            a.mem_info(0, 1, 4 * MIB),
            (1, 4 * MIB),
            "limit above the GPU"
        );
    }

    #[test]
    fn reused_key_replaces_the_stale_entry() {
        let mut a = Accounting::new(100 * MIB);
        a.reserve(0, 5 * MIB).unwrap();
        a.commit(Key::Ptr(1), 0, 5 * MIB, 5 * MIB, 1);
        a.reserve(0, 3 * MIB).unwrap();
        a.commit(Key::Ptr(1), 0, 3 * MIB, 3 * MIB, 1);
        assert_eq!(a.usage(0).used, 3 * MIB);
    }
}
