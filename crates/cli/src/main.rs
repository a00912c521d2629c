//! `agentgate`: the one binary.

mod apps_cmd;
mod cli;
mod dev_cmd;
mod keys_cmd;
mod serve_cmd;
mod users_cmd;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// mimalloc for the many small, short-lived allocations of request handling
/// (headers, JSON, channels), where it measurably beats the system allocator (see
/// bench/); the C library's allocator for the rare large blocks (argon2id's 19 MiB
/// per password check), which it maps and unmaps whole (see [`unmap_large_blocks`]),
/// so an idle server does not keep the memory of its last sign-ins: mimalloc would
/// hold on to it.
struct Allocator;

/// From this size on, a block goes to the system allocator.
const LARGE: usize = 1 << 20;

// SAFETY: every block is freed (or resized) by the allocator that made it: the
// choice depends only on the layout's size, which the caller passes back
// unchanged, and a resize that crosses LARGE moves the block between the two.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= LARGE {
                std::alloc::System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if layout.size() >= LARGE {
                std::alloc::System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from the allocator the same size chose.
        unsafe {
            if layout.size() >= LARGE {
                std::alloc::System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees; a block changing sides is
        // copied into a new one of the new size and the old one freed where it was made.
        unsafe {
            match (layout.size() >= LARGE, new_size >= LARGE) {
                (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => std::alloc::System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = std::alloc::Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

/// glibc serves a large block from a fresh mapping and unmaps it when freed, but
/// only until the first such free: from then on it raises that threshold to the
/// block's size and serves the next ones from its heaps, which it keeps (16
/// sign-ins left 230 MiB resident). A fixed threshold keeps every block of
/// `LARGE` or more in its own mapping.
fn unmap_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
    }
}

fn main() -> std::process::ExitCode {
    unmap_large_blocks();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(run())
}

async fn run() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `AGENTGATE_LOG` (default `info`), e.g.
/// `AGENTGATE_LOG=agentgate_guard=debug`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
