//! A queue of byte strings that workers pass to the loader process: a fixed
//! number of slots of a fixed size, and a push counter the loader sleeps
//! on. It lives inside a shared mapping its owner makes zero-filled (the
//! OCSP cache, the CDP registry), which is a valid empty queue; the owner
//! keeps its own counters, such as pushes refused for a full queue.
//!
//! A slot's state word says who may touch its bytes: `FREE`, taken by a
//! pusher with one compare-and-swap that writes its process id in; then
//! `READY`, written once the bytes are; then `FREE` again once the loader,
//! the one drainer, has read them. Nobody waits on a slot: a pusher that
//! finds none free gives up, and the drainer skips slots still being
//! written. A worker killed mid-push leaves its process id in the slot;
//! the drainer gives such a slot back once that process is gone. (Were
//! the id taken by a new process meanwhile, the slot comes back when that
//! one ends.)

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Slot states; any other value is the id of the process writing it.
/// Linux process ids are above 0 and below 2^22.
const FREE: u32 = 0;
const READY: u32 = u32::MAX;

#[repr(C)]
struct Slot<const BYTES: usize> {
    state: AtomicU32,
    len: AtomicU32,
    bytes: UnsafeCell<[u8; BYTES]>,
}

/// `SLOTS` items of at most `BYTES` bytes each. Only ever found zero-filled
/// in a shared mapping, never built by value.
#[repr(C)]
pub struct Queue<const SLOTS: usize, const BYTES: usize> {
    /// Bumped by every push, and a futex the loader waits on.
    pushed: AtomicU32,
    slots: [Slot<BYTES>; SLOTS],
}

/// Why an item was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// Every slot was taken.
    Full,
    /// The item is longer than a slot.
    TooLarge,
}

impl<const SLOTS: usize, const BYTES: usize> Queue<SLOTS, BYTES> {
    /// Queues `item` and wakes the loader.
    pub fn push(&self, item: &[u8]) -> Result<(), PushError> {
        if item.len() > BYTES {
            return Err(PushError::TooLarge);
        }
        let me = std::process::id();
        for slot in &self.slots {
            if slot
                .state
                .compare_exchange(FREE, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SAFETY: the slot is ours while its state holds our id: no
            // other pusher takes it and the drainer does not read it.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    item.as_ptr(),
                    slot.bytes.get().cast::<u8>(),
                    item.len(),
                );
            }
            slot.len.store(item.len() as u32, Ordering::Relaxed);
            slot.state.store(READY, Ordering::Release);
            self.notify();
            return Ok(());
        }
        Err(PushError::Full)
    }

    /// Takes every queued item, in slot order (the loader only: one
    /// drainer), and frees the slots of pushers that died writing them.
    pub fn drain(&self, mut take: impl FnMut(&[u8])) {
        for slot in &self.slots {
            match slot.state.load(Ordering::Acquire) {
                FREE => {}
                READY => {
                    let len = (slot.len.load(Ordering::Relaxed) as usize).min(BYTES);
                    // SAFETY: a READY slot's bytes are complete (the
                    // acquire above pairs with the pusher's release) and
                    // nobody writes them until we store FREE below; `len`
                    // is within the slot.
                    take(unsafe {
                        core::slice::from_raw_parts(slot.bytes.get().cast::<u8>(), len)
                    });
                    slot.state.store(FREE, Ordering::Release);
                }
                // Only its writer moves a slot on from its id: once that
                // process is gone, nobody else will.
                writer if !alive(writer) => slot.state.store(FREE, Ordering::Release),
                _ => {}
            }
        }
    }

    /// Wakes the loader, as a push does (for work that ended elsewhere).
    pub fn notify(&self) {
        self.pushed.fetch_add(1, Ordering::Release);
        futex_wake(&self.pushed);
    }

    /// The push count, to wait on.
    pub fn pushed(&self) -> u32 {
        self.pushed.load(Ordering::Acquire)
    }

    /// Sleeps until a push after `seen`, at most `limit`.
    pub fn wait(&self, seen: u32, limit: Duration) {
        futex_wait(&self.pushed, seen, limit);
    }
}

/// Sleeps until `word`, a counter in a shared mapping, is no longer
/// `seen`, or `limit` has passed; returns at once where it already moved.
fn futex_wait(word: &AtomicU32, seen: u32, limit: Duration) {
    let ts = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(limit.subsec_nanos() as i32),
    };
    // SAFETY: FUTEX_WAIT on a live, aligned u32 of a shared mapping (hence
    // not FUTEX_PRIVATE), with a valid relative timeout; it returns at
    // once where the value is no longer `seen`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes a process sleeping in [`futex_wait`] on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live, aligned u32 of a shared mapping; it
    // never blocks.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Whether process `pid` still exists. A process of another user counts
/// as alive; so does a zombie, until its parent reaps it.
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; kill only checks the process exists
    // and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::{alive, PushError, Queue, FREE};
    use crate::state::SharedRegion;
    use core::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    type Small = Queue<4, 16>;

    /// A zero-filled shared mapping holding one queue, as an owner makes.
    struct Mapped(SharedRegion);

    impl Mapped {
        fn new() -> Mapped {
            Mapped(SharedRegion::new_zeroed(size_of::<Small>()).unwrap())
        }

        fn queue(&self) -> &Small {
            // SAFETY: a live zero-filled mapping, a valid empty queue.
            unsafe { &*self.0.as_ptr().cast::<Small>() }
        }
    }

    fn drained(q: &Small) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        q.drain(|item| out.push(item.to_vec()));
        out
    }

    #[test]
    fn full_and_oversized() {
        let m = Mapped::new();
        let q = m.queue();
        let seen = q.pushed();
        assert_eq!(q.push(b"one"), Ok(()));
        assert_eq!(q.push(b""), Ok(()));
        assert_ne!(q.pushed(), seen);
        assert_eq!(drained(q), [b"one".to_vec(), vec![]]);
        assert!(drained(q).is_empty());
        assert_eq!(q.push(&[7; 17]), Err(PushError::TooLarge));
        for n in 0..4u8 {
            assert_eq!(q.push(&[n; 16]), Ok(()));
        }
        assert_eq!(q.push(b"more"), Err(PushError::Full));
        assert_eq!(drained(q).len(), 4);
        assert_eq!(q.push(b"room again"), Ok(()));
    }

    /// A slot left claimed by a process that died mid-push comes back at
    /// the next drain; one claimed by a live process stays its own.
    #[test]
    fn a_dead_pusher_leaves_no_slot_taken() {
        let m = Mapped::new();
        let q = m.queue();
        // SAFETY: the child exits at once.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(!alive(child as u32));
        q.slots[0].state.store(child as u32, Ordering::Relaxed);
        q.slots[1]
            .state
            .store(std::process::id(), Ordering::Relaxed);
        for n in 0..2u8 {
            assert_eq!(q.push(&[n]), Ok(()));
        }
        assert_eq!(q.push(b"x"), Err(PushError::Full));
        assert_eq!(drained(q), [vec![0], vec![1]]);
        assert_eq!(q.slots[0].state.load(Ordering::Relaxed), FREE);
        assert_eq!(q.slots[1].state.load(Ordering::Relaxed), std::process::id());
        for n in 0..3u8 {
            assert_eq!(q.push(&[n]), Ok(()));
        }
        assert_eq!(q.push(b"x"), Err(PushError::Full));
    }

    /// The loader sleeps on the queue and wakes at a push from another
    /// process.
    #[test]
    fn wait_wakes_at_a_push_across_fork() {
        let m = Mapped::new();
        let q = m.queue();
        let seen = q.pushed();
        let start = Instant::now();
        q.wait(seen, Duration::from_millis(30));
        assert!(start.elapsed() >= Duration::from_millis(25));
        // SAFETY: the child only pushes and exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            std::thread::sleep(Duration::from_millis(50));
            let _ = q.push(b"from a worker");
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(0) };
        }
        let start = Instant::now();
        q.wait(seen, Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(drained(q), [b"from a worker".to_vec()]);
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
    }
}
