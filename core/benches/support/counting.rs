//! A counting allocator for the benches that report memory: the live heap bytes of the whole
//! process (what the allocator was asked for, not what it took from the system).
//!
//! It forwards to glibc's malloc (the system allocator) or, when `LIVECACHE_BENCH_ALLOCATOR` is
//! `mimalloc`, to mimalloc, the allocator the Python and Node packages link: the RSS a Rust
//! program sees depends on the allocator it chose, and the packages' users get mimalloc's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};

use mimalloc::MiMalloc;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

const UNDECIDED: u8 = 0;
const SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;
static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Decided at the first allocation, which the runtime makes on the main thread before `main`, so
/// every block is freed by the allocator that made it. `getenv` itself does not allocate.
fn choice() -> u8 {
    let c = CHOICE.load(Ordering::Relaxed);
    if c != UNDECIDED {
        return c;
    }
    extern "C" {
        fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
    }
    // SAFETY: a NUL-terminated name; the result is read before any other thread exists.
    let value = unsafe { getenv(c"LIVECACHE_BENCH_ALLOCATOR".as_ptr()) };
    let c = if !value.is_null() && unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() == b"mimalloc" { MIMALLOC } else { SYSTEM };
    CHOICE.store(c, Ordering::Relaxed);
    c
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        match choice() {
            MIMALLOC => unsafe { MiMalloc.alloc(layout) },
            _ => unsafe { System.alloc(layout) },
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        match choice() {
            MIMALLOC => unsafe { MiMalloc.dealloc(ptr, layout) },
            _ => unsafe { System.dealloc(ptr, layout) },
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        match choice() {
            MIMALLOC => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            _ => unsafe { System.realloc(ptr, layout, new_size) },
        }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes currently allocated.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The allocator in use, for the report.
#[allow(dead_code)] // the soak reports it, the entries bench does not
pub fn allocator() -> &'static str {
    match choice() {
        MIMALLOC => "mimalloc",
        _ => "glibc malloc",
    }
}

/// Asks the allocator to give the free memory it keeps back to the system (glibc `malloc_trim`,
/// mimalloc `mi_collect`).
#[allow(dead_code)] // the soak trims, the entries bench does not
pub fn trim() {
    if choice() == MIMALLOC {
        extern "C" {
            // In the mimalloc library that the `mimalloc` crate links.
            fn mi_collect(force: bool);
        }
        // SAFETY: mi_collect only releases free memory.
        unsafe { mi_collect(true) };
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it takes the allocator's locks.
        unsafe { malloc_trim(0) };
    }
}
