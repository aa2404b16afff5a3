//! A counting allocator for the benches that report memory: the live heap bytes of the whole
//! process (what the allocator was asked for, not what it took from the system), on top of the
//! allocator `LIVECACHE_BENCH_ALLOCATOR` chooses (`allocator.rs`).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

#[path = "allocator.rs"]
mod allocator;
#[allow(unused_imports)] // the soak reports and trims, the entries bench does not
pub use allocator::{name as allocator, trim};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { allocator::Chosen.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { allocator::Chosen.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { allocator::Chosen.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes currently allocated.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}
