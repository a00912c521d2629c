//! The binary's memory allocator: mimalloc for the many small, short-lived
//! allocations of request handling (headers, JSON, channels), where it measurably
//! beats the C library's (see bench/); a mapping of its own for each rare large
//! block (argon2id takes 19 MiB per password check), returned to the system the
//! moment it is freed, so an idle server does not keep the memory of its last
//! sign-ins. (mimalloc keeps freed memory for reuse; glibc's malloc, after the
//! first large free, serves the next large blocks from heaps it keeps too.)
//!
//! On Linux a large block asks for transparent huge pages: filling 19 MiB of
//! fresh 4 KiB pages costs thousands of page faults per sign-in, 2 MiB pages ten.

use std::alloc::{GlobalAlloc, Layout};

/// From this size on, a block gets its own mapping.
const LARGE: usize = 1 << 20;

/// See the module documentation.
pub struct Allocator;

fn is_large(layout: &Layout) -> bool {
    // A mapping is page-aligned: stricter alignments (never asked for in
    // practice) stay with mimalloc.
    layout.size() >= LARGE && layout.align() <= 4096
}

// SAFETY: every block is freed (or resized) by the allocator that made it: the
// choice depends only on the layout, which the caller passes back unchanged,
// and a resize that changes sides moves the block.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { if is_large(&layout) { map(layout.size()) } else { mimalloc::MiMalloc.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees; a fresh mapping is zeroed.
        unsafe {
            if is_large(&layout) { map(layout.size()) } else { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the side the same layout chose.
        unsafe {
            if is_large(&layout) {
                unmap(ptr, layout.size())
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            if !is_large(&layout) && !is_large(&new_layout) {
                return mimalloc::MiMalloc.realloc(ptr, layout, new_size);
            }
            // A large block, or one becoming large or small: move it.
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(unix)]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping of `size` bytes, owned by the caller.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if ptr == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        #[cfg(target_os = "linux")]
        libc::madvise(ptr, size, libc::MADV_HUGEPAGE);
        ptr.cast()
    }
}

#[cfg(unix)]
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr` and `size` are those of a mapping made by `map`.
    unsafe {
        libc::munmap(ptr.cast(), size);
    }
}

#[cfg(not(unix))]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: a valid layout (the alignment is a power of two, at most a page).
    unsafe { std::alloc::System.alloc_zeroed(Layout::from_size_align_unchecked(size, 4096)) }
}

#[cfg(not(unix))]
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: made by `map` with the same layout.
    unsafe { std::alloc::System.dealloc(ptr, Layout::from_size_align_unchecked(size, 4096)) }
}
