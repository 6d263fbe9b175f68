//! A counting global allocator (installed by the fuzz runner and the fuzz test with
//! `#[global_allocator]`): per thread, the bytes live, the peak of one execution and a cap. A
//! request that would take the thread's live bytes past the cap saves the input being executed
//! (the finding) and fails, which aborts the process: a parser that allocates what a header
//! claims, unchecked, is caught at the first such input instead of exhausting the machine.
//! Counts are per thread so that tests running beside a fuzz run (the test harness runs them
//! in parallel) neither trip its cap nor get tripped by it; the parsers run on the calling
//! thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

/// Live bytes allocated minus freed by this thread, the execution's base and peak, its cap.
struct Counts {
    live: Cell<usize>,
    base: Cell<usize>,
    peak: Cell<usize>,
    cap: Cell<usize>,
    reporting: Cell<bool>,
}

thread_local! {
    static COUNTS: Counts = const {
        Counts {
            live: Cell::new(0),
            base: Cell::new(0),
            peak: Cell::new(0),
            cap: Cell::new(usize::MAX),
            reporting: Cell::new(false),
        }
    };
}

/// Folder where the input that passed the cap is saved.
pub const FINDINGS: &str = "fuzz-findings";

/// Starts an execution on this thread: at most `cap` bytes more than now may be live until
/// [`end`].
pub fn begin(cap: usize) {
    COUNTS.with(|c| {
        let live = c.live.get();
        c.base.set(live);
        c.peak.set(live);
        c.cap.set(live.saturating_add(cap));
    });
}

/// Ends this thread's execution: the peak of live bytes above its start.
pub fn end() -> usize {
    COUNTS.with(|c| {
        c.cap.set(usize::MAX);
        c.peak.get().saturating_sub(c.base.get())
    })
}

fn over(c: &Counts, size: usize) {
    if c.reporting.replace(true) {
        return;
    }
    c.cap.set(usize::MAX);
    let saved = match super::CURRENT.try_lock() {
        Ok(cur) => {
            let _ = std::fs::create_dir_all(FINDINGS);
            let path = format!("{FINDINGS}/{}-alloc.bin", cur.0);
            match std::fs::write(&path, &cur.1) {
                Ok(()) => path,
                Err(e) => format!("(not saved: {e})"),
            }
        }
        Err(_) => "(not saved)".to_string(),
    };
    eprintln!(
        "FINDING [allocation] a request of {size} bytes would pass the execution's cap; input: {saved}"
    );
}

/// Counts `grow` more bytes on this thread; false (and the finding reported) past the cap.
fn grow(grow: usize, request: usize) -> bool {
    COUNTS
        .try_with(|c| {
            let live = c.live.get().saturating_add(grow);
            if live > c.cap.get() {
                over(c, request);
                return false;
            }
            c.live.set(live);
            c.peak.set(c.peak.get().max(live));
            true
        })
        .unwrap_or(true)
}

fn shrink(by: usize) {
    let _ = COUNTS.try_with(|c| c.live.set(c.live.get().saturating_sub(by)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            shrink(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size(), layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            shrink(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !grow(new_size - old, new_size) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                shrink(new_size - old);
            }
        } else if new_size < old {
            shrink(old - new_size);
        }
        p
    }
}
