//! The allocator a bench runs on: glibc's malloc (the system allocator) or, when
//! `LIVECACHE_BENCH_ALLOCATOR` is `mimalloc`, mimalloc, the allocator the Python and Node
//! packages link. A Rust program's throughput and RSS depend on the allocator it chose (glibc
//! serialises the frees one thread makes of another thread's blocks), so the benches that report
//! them can run on either.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// Forwards to the allocator `LIVECACHE_BENCH_ALLOCATOR` names.
pub struct Chosen;

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

unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match choice() {
            MIMALLOC => unsafe { MiMalloc.alloc(layout) },
            _ => unsafe { System.alloc(layout) },
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match choice() {
            MIMALLOC => unsafe { MiMalloc.dealloc(ptr, layout) },
            _ => unsafe { System.dealloc(ptr, layout) },
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match choice() {
            MIMALLOC => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            _ => unsafe { System.realloc(ptr, layout, new_size) },
        }
    }
}

/// The allocator in use, for the report.
#[allow(dead_code)] // not every bench reports it
pub fn name() -> &'static str {
    match choice() {
        MIMALLOC => "mimalloc",
        _ => "glibc malloc",
    }
}

/// Asks the allocator to give the free memory it keeps back to the system (glibc `malloc_trim`,
/// mimalloc `mi_collect`).
#[allow(dead_code)] // only the soak trims
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
