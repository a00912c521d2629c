//! Copying SQLite's log back into the database file, mostly off the request path.
//!
//! In WAL mode a commit appends pages to the log (`-wal`) and syncs nothing; a
//! *checkpoint* syncs the log, copies the logged pages back into the database
//! file and syncs that, after which the log can start over from its beginning.
//! SQLite runs one from inside the commit that grows the log past a mark
//! ([`CHECKPOINT_PAGES`]), on the committing thread. For the issuer that thread
//! is a runtime worker in the middle of a token request, holding the store's
//! lock, so every request in flight waited for the syncs of 16 MiB: under a
//! token-exchange load, a pause of about 30 ms in every 100 ms, the server idle
//! while the disk worked.
//!
//! So a thread of its own, with a connection of its own, copies the log as it
//! grows, outside the store's turns: SQLite lets a checkpoint in `PASSIVE` mode
//! run beside a writer, copying what was committed before it began. The thread
//! syncs the log itself just before each copy, outside SQLite's locks, so that
//! the sync SQLite makes under its checkpoint lock finds only the pages of the
//! last instant left to write. The commit at the mark still checkpoints, as
//! before, but finds nearly everything copied, and waits for far less.
//!
//! That commit stays in charge of the log's length, on purpose: the log
//! restarts only after a checkpoint that left nothing uncopied, and under
//! steady writes only one taken between two commits, inside the store's turns,
//! can be sure of that. This thread only makes it cheap; were it to stop, the
//! log would be bounded as before. While the thread is copying, the commit at
//! the mark cannot, and tries again at the next commit, so the log may pass
//! the mark by what commits during one copy.
//!
//! The thread never opens the database file itself, only the log: SQLite's
//! locks on the database file are POSIX locks, which belong to the process,
//! and closing any other descriptor of that file would drop them all.
//!
//! The thread sleeps until the store says it wrote ([`LogCopier::wrote`]: an
//! atomic flag, and a wake-up only when the flag was clear), copies, and rests
//! [`COPY_INTERVAL`] before the next copy, so an idle issuer costs nothing and a
//! busy one copies a bounded number of times a second. Nothing here is needed
//! for durability: SQLite syncs what a checkpoint needs on its own.
//!
//! [`CHECKPOINT_PAGES`]: super::sqlite::CHECKPOINT_PAGES

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::sqlite_direct::open_beside;
use super::{Durability, StoreError};

/// The rest between two copies. Shorter copies the hottest pages (the ends of
/// the tables being appended to) more often; longer leaves more for the commit
/// at the mark. 30 ms did best of 10, 30, 60 and 120 under exchange load.
pub(super) const COPY_INTERVAL: Duration = Duration::from_millis(30);

/// The store's handle on its log-copying thread. Dropping it stops the thread,
/// after the copy in progress if there is one.
#[derive(Debug)]
pub(super) struct LogCopier {
    flags: Arc<Flags>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Flags {
    /// Something may have been written since the thread last looked.
    wrote: AtomicBool,
    /// The store is closing: the thread returns.
    stop: AtomicBool,
}

/// What the thread holds: its connection, and the log it syncs (none if the
/// log could not be opened: the copies are then only slower to wait for).
struct Files {
    conn: Connection,
    log: Option<File>,
}

impl LogCopier {
    /// Starts the thread, with its own connection to `path`, an existing
    /// database in WAL mode that the store has open.
    pub(super) fn start(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        // A checkpoint syncs as its own connection says: NORMAL and FULL both
        // sync the log before copying, and the database file once the log is
        // all copied.
        let conn = open_beside(path, durability)?;
        let mut log = path.as_os_str().to_owned();
        log.push("-wal");
        let log = File::open(&log)
            .inspect_err(|error| tracing::debug!(%error, "opening the SQLite log to sync it"))
            .ok();
        let files = Files { conn, log };
        let flags = Arc::new(Flags::default());
        let thread = thread::Builder::new()
            .name("sqlite-log-copy".into())
            .spawn({
                let flags = flags.clone();
                move || copy_until_stopped(&files, &flags)
            })
            .map_err(StoreError::Thread)?;
        Ok(Self { flags, thread: Some(thread) })
    }

    /// Tells the thread the log may have grown.
    pub(super) fn wrote(&self) {
        if !self.flags.wrote.swap(true, Ordering::AcqRel)
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
    }
}

impl Drop for LogCopier {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The thread: a copy whenever something may have been written, then a rest.
fn copy_until_stopped(files: &Files, flags: &Flags) {
    while !flags.stop.load(Ordering::Acquire) {
        // The flag before parking: a wake-up spent during the rest must not
        // leave a write unseen (its `wrote` found the flag set and woke no one).
        if !flags.wrote.swap(false, Ordering::AcqRel) {
            thread::park();
            continue;
        }
        files.copy();
        let rested = Instant::now() + COPY_INTERVAL;
        while let Some(left) = rested.checked_duration_since(Instant::now()) {
            if flags.stop.load(Ordering::Acquire) {
                return;
            }
            thread::park_timeout(left);
        }
    }
}

impl Files {
    /// One copy, after the sync that makes SQLite's own short. A copy that
    /// fails, or finds pages a reader still needs, leaves them to the next one
    /// or to the commit at the mark.
    fn copy(&self) {
        if let Some(Err(error)) = self.log.as_ref().map(File::sync_data) {
            tracing::warn!(%error, "syncing the SQLite log");
        }
        if let Err(error) = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "copying the SQLite log into the database file");
        }
    }
}
