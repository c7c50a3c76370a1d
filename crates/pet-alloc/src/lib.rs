//! The global allocator of the `pet` binary.
//!
//! A training step allocates and frees tensors of tens of MiB many times over. glibc's malloc
//! returns blocks of that size to the operating system on free, so every new activation is
//! faulted in and zeroed page by page again; mimalloc by default also decommits freed memory
//! after a delay. With [`keep_freed_memory`], freed pages stay mapped and are reused. Measured
//! on MiniLM (batch 32, seq 128, prefix 16, 2 threads; `docs/benchmarks/README.md`, "Steps"):
//! P-Tuning v2 training 13.5 -> 17.1 samples/s, inference 27.8 -> 37.4, against glibc.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: pet_alloc::Allocator = pet_alloc::Allocator;
//!
//! fn main() {
//!     pet_alloc::keep_freed_memory();
//! }
//! ```

/// mimalloc as a [`GlobalAlloc`](std::alloc::GlobalAlloc).
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (`include/mimalloc.h` of the
/// libmimalloc-sys version pinned in the workspace); libmimalloc-sys names no constant for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The environment variable through which mimalloc reads the same option.
const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Tells mimalloc never to purge (decommit) freed memory, unless the environment already sets
/// `MIMALLOC_PURGE_DELAY`. Peak resident memory is unchanged in kind: what a step freed is what
/// the next step allocates again.
pub fn keep_freed_memory() {
    if std::env::var_os(PURGE_DELAY_ENV).is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it takes no pointer
    // and may be called at any time from any thread. -1 means "never purge".
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}

/// The purge delay mimalloc is using, in milliseconds (-1: never).
pub fn purge_delay() -> i64 {
    // SAFETY: `mi_option_get` reads an integer from mimalloc's option table; no pointers.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    // `c_long` is `i64` here but `i32` on Windows.
    #[allow(clippy::useless_conversion)]
    i64::from(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc v3's default is 1000 ms; after the call it reads back as "never".
        if std::env::var_os(super::PURGE_DELAY_ENV).is_none() {
            assert_eq!(super::purge_delay(), 1000);
            super::keep_freed_memory();
            assert_eq!(super::purge_delay(), -1);
        }
    }
}
