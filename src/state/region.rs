//! An anonymous shared mapping, owned: made zero-filled, unmapped on drop.

use std::io;

/// A fresh anonymous mapping, shared with the processes forked after it
/// (workers, the loader) and zero-filled by the kernel: a valid initial
/// state for every atomic its users keep in it.
pub(crate) struct SharedRegion {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the region hands out its memory only as a raw pointer, so every
// access is its users' own unsafe code; they must make concurrent access
// sound, whether from threads or from the processes that share the
// mapping anyway: through atomics, or to bytes that one process at a time
// owns (a queue's slot), or written only before they are published with
// release and read only after, with acquire. Users must not keep a
// reference into the region past its drop.
unsafe impl Send for SharedRegion {}
// SAFETY: as above.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    pub(crate) fn new_zeroed(len: usize) -> io::Result<SharedRegion> {
        // SAFETY: with a null hint and no file, mmap only makes a new
        // mapping, touching no memory of ours; its result is checked
        // before use.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedRegion {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The start of the region, page-aligned; valid for its `len` bytes
    /// while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: the mapping of `len` bytes made in `new_zeroed`; its
        // users keep no reference into it past its drop.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::SharedRegion;
    use core::sync::atomic::{AtomicU64, Ordering};

    /// What the owners rely on: the region starts zero-filled, and what a
    /// process forked after it writes there, its parent reads.
    #[test]
    fn zeroed_and_shared_with_children() {
        let len = 3 * 4096;
        let region = SharedRegion::new_zeroed(len).unwrap();
        // SAFETY: `len` readable bytes of the live region.
        let bytes = unsafe { core::slice::from_raw_parts(region.as_ptr(), len) };
        assert!(bytes.iter().all(|&b| b == 0));

        // SAFETY: page-aligned, inside the region, which outlives it; only
        // ever accessed as an atomic.
        let word = unsafe { &*region.as_ptr().add(len - 8).cast::<AtomicU64>() };
        // SAFETY: the child stores one word and exits at once.
        let child = unsafe { libc::fork() };
        if child == 0 {
            word.store(0x5eed, Ordering::Release);
            // SAFETY: _exit in the forked child, running nothing of ours.
            unsafe { libc::_exit(0) };
        }
        assert!(child > 0);
        let mut status = 0;
        // SAFETY: reaping our own child, with a valid status pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(word.load(Ordering::Acquire), 0x5eed);
    }
}
