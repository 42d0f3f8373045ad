//! A counting global allocator for tests that assert an operation's peak heap use (decoders fed
//! crafted headers must refuse them before allocating what the header claims).
//!
//! A test binary installs it with
//! `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;` and wraps the operation in
//! [`peak_during`]. The count is process-wide, so measurements are serialized by a lock; other
//! threads of the test binary still count, which only makes the bound conservative.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

/// The system allocator, counting live bytes and their peak.
pub struct CountingAlloc;

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Runs `f` and returns its result with the most heap bytes live at once during it, above what
/// was live when it started. Meaningful only where [`CountingAlloc`] is the global allocator.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let meter = Meter::start();
    let out = f();
    (out, meter.peak())
}

/// A measurement in progress, for code that cannot run inside [`peak_during`] (async tests):
/// the caller keeps measurements from overlapping.
pub struct Meter {
    base: usize,
}

impl Meter {
    /// Resets the peak to what is live now.
    pub fn start() -> Self {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        Self { base }
    }

    /// The most heap bytes live at once since [`Self::start`], above what was live then.
    pub fn peak(&self) -> usize {
        PEAK.load(Ordering::Relaxed).saturating_sub(self.base)
    }
}
