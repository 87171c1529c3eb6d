//! The process allocator: mimalloc, except for blocks of exactly 8 KiB, which come from a
//! region of their own whose free list is kept outside the blocks.
//!
//! hyper allocates two 8 KiB buffers for every HTTP/1 connection: a header write buffer when
//! the connection opens, and a read buffer, which it replaces with a fresh one while a request
//! is being answered (the request still points into the old one). Neither is written while a
//! request is held for approval, yet on mimalloc each costs ~4-5 KB resident: mimalloc
//! writes its free list into every block of a fresh page. hyper offers no way to make them
//! smaller or later (benches/README.md, "held memory"). Here an 8 KiB block that nobody wrote
//! costs no memory at all, so a held request no longer pays for two buffers it does not use.
//!
//! The region is address space reserved once (`SLOTS` blocks, `MAP_NORESERVE`); a block's pages
//! become resident when its user writes them. Freed blocks are reused first (last freed, first
//! reused); beyond `SPARE` of them, a freed block's pages are given back to the kernel. When
//! the region is full, or could not be mapped, 8 KiB blocks come from mimalloc like the rest.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// The size of the blocks served from the region: hyper's buffer size (`INIT_BUFFER_SIZE`).
pub const BLOCK: usize = 8192;
/// Blocks in the region: 512 MiB of address space, ~2 blocks per open connection.
const SLOTS: usize = 1 << 16;
/// Freed blocks kept as they are (their pages resident) for reuse; more are given back.
const SPARE: usize = 1024;

/// mimalloc, with 8 KiB blocks from [`Region`]. `clawgate`'s global allocator.
pub struct Allocator {
    region: Region,
}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator {
            region: Region::new(SLOTS, SPARE),
        }
    }
}

impl Default for Allocator {
    fn default() -> Allocator {
        Allocator::new()
    }
}

fn from_region(layout: Layout) -> bool {
    layout.size() == BLOCK && layout.align() <= BLOCK
}

// SAFETY: every block handed out is either mimalloc's or a distinct, unused block of the
// region (`Region::take`), valid for `BLOCK` bytes at `BLOCK` alignment; `dealloc` and
// `realloc` tell the two apart by address, whatever the layout says.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if from_region(layout)
            && let Some(p) = self.region.take()
        {
            return p;
        }
        // SAFETY: the caller's contract (non-zero size) is passed on unchanged.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Zeroed blocks are left to mimalloc: a reused block of the region would have to be
        // written (made resident) to zero it.
        // SAFETY: as for `alloc`.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if !self.region.give_back(p) {
            // SAFETY: not the region's, so mimalloc's, with the caller's layout.
            unsafe { MiMalloc.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.region.contains(p) {
            if new_size <= BLOCK {
                // The block is large enough: keep it (freed by address later, whatever size).
                return p;
            }
            // SAFETY: `new_size` is non-zero and, with the old alignment, a valid layout
            // (the caller's contract); the old block holds `layout.size()` bytes.
            unsafe {
                let new =
                    MiMalloc.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    ptr::copy_nonoverlapping(p, new, layout.size().min(new_size));
                    self.region.give_back(p);
                }
                return new;
            }
        }
        // SAFETY: mimalloc's block, the caller's contract passed on.
        unsafe { MiMalloc.realloc(p, layout, new_size) }
    }
}

/// Address space for `slots` blocks of [`BLOCK`] bytes, mapped on first use, with a stack of
/// free block numbers beside it (never inside the blocks).
pub struct Region {
    /// The first block's address; 0 before the first use, `FAILED` if it could not be mapped.
    base: AtomicUsize,
    slots: usize,
    spare: usize,
    state: Mutex<State>,
}

const FAILED: usize = 1;

struct State {
    /// Blocks below this number have been handed out at least once.
    fresh: usize,
    /// Free block numbers (the stack's storage follows the blocks in the same mapping).
    free: *mut u32,
    free_len: usize,
}

// SAFETY: `free` points into the region's own mapping, only touched under the mutex.
unsafe impl Send for State {}

impl Region {
    pub const fn new(slots: usize, spare: usize) -> Region {
        Region {
            base: AtomicUsize::new(0),
            slots,
            spare,
            state: Mutex::new(State {
                fresh: 0,
                free: ptr::null_mut(),
                free_len: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing under the lock can panic; a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.slots * BLOCK
    }

    /// Whether `p` is one of the region's blocks.
    pub fn contains(&self, p: *mut u8) -> bool {
        let base = self.base.load(Ordering::Acquire);
        base > FAILED && (p as usize).wrapping_sub(base) < self.len()
    }

    /// An unused block, or `None` when the region is full or cannot be mapped.
    pub fn take(&self) -> Option<*mut u8> {
        let mut s = self.state();
        let base = self.mapped(&mut s)?;
        let n = if s.free_len > 0 {
            s.free_len -= 1;
            // SAFETY: `free` has room for `slots` numbers and `free_len` of them are set.
            unsafe { *s.free.add(s.free_len) as usize }
        } else if s.fresh < self.slots {
            s.fresh += 1;
            s.fresh - 1
        } else {
            return None;
        };
        Some((base + n * BLOCK) as *mut u8)
    }

    /// Take back `p` if it is the region's (true), else leave it (false).
    pub fn give_back(&self, p: *mut u8) -> bool {
        if !self.contains(p) {
            return false;
        }
        let base = self.base.load(Ordering::Acquire);
        let n = ((p as usize) - base) / BLOCK;
        let mut s = self.state();
        if s.free_len >= self.spare {
            // Enough kept for reuse: give the pages back, so that what many connections used
            // at once is not resident forever. Outside the lock: it is a system call.
            drop(s);
            // SAFETY: the block is the caller's to free and nobody else's: nothing reads it.
            unsafe {
                libc::madvise(p.cast(), BLOCK, libc::MADV_DONTNEED);
            }
            s = self.state();
        }
        // SAFETY: at most `slots` blocks are out, so the stack has room.
        unsafe { *s.free.add(s.free_len) = n as u32 };
        s.free_len += 1;
        true
    }

    /// The first block's address, mapping the region on first use (under the lock).
    fn mapped(&self, s: &mut State) -> Option<usize> {
        match self.base.load(Ordering::Acquire) {
            0 => {}
            FAILED => return None,
            base => return Some(base),
        }
        let stack = self.slots * std::mem::size_of::<u32>();
        // One block more than needed: mmap aligns to pages, blocks need `BLOCK` alignment.
        let len = self.len() + stack + BLOCK;
        // SAFETY: a new private anonymous mapping; nothing else is at the address it returns.
        let mapped = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            self.base.store(FAILED, Ordering::Release);
            return None;
        }
        // Huge pages would make a block's first write resident for 2 MiB around it.
        // SAFETY: advice on the mapping just made.
        unsafe {
            libc::madvise(mapped, len, libc::MADV_NOHUGEPAGE);
        }
        let base = (mapped as usize).next_multiple_of(BLOCK);
        s.free = (base + self.len()) as *mut u32;
        self.base.store(base, Ordering::Release);
        Some(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident_kib(p: *mut u8, len: usize) -> usize {
        let pages = len.div_ceil(4096);
        let mut vec = vec![0u8; pages];
        // SAFETY: `p` is page-aligned and `len` bytes of it are mapped.
        let r = unsafe { libc::mincore(p.cast(), len, vec.as_mut_ptr()) };
        assert_eq!(r, 0);
        vec.iter().filter(|b| **b & 1 == 1).count() * 4
    }

    #[test]
    fn blocks_are_distinct_aligned_and_reused_last_freed_first() {
        let r = Region::new(4, 2);
        let a = r.take().expect("a block");
        let b = r.take().expect("a block");
        assert_ne!(a, b);
        assert_eq!(a as usize % BLOCK, 0);
        assert!(r.contains(a) && r.contains(b));
        assert!(r.give_back(a));
        assert_eq!(r.take(), Some(a));
        let (c, d) = (r.take().expect("c"), r.take().expect("d"));
        assert_eq!(r.take(), None, "all four are out");
        for p in [a, b, c, d] {
            assert!(r.give_back(p));
        }
        assert!(r.take().is_some());
    }

    #[test]
    fn foreign_pointers_are_not_taken() {
        let r = Region::new(2, 2);
        let mut x = 0u8;
        assert!(!r.contains(&mut x));
        assert!(!r.give_back(&mut x));
        let p = r.take().expect("a block");
        // SAFETY: one past the region's end is not in it; nothing is dereferenced.
        let past = unsafe { p.add(2 * BLOCK) };
        assert!(!r.contains(past));
    }

    #[test]
    fn an_unwritten_block_is_not_resident_and_spare_blocks_are_given_back() {
        let r = Region::new(8, 1);
        let a = r.take().expect("a block");
        assert_eq!(resident_kib(a, BLOCK), 0, "nothing wrote the block");
        // SAFETY: the block is ours, BLOCK bytes.
        unsafe { ptr::write_bytes(a, 7, 100) };
        assert_eq!(resident_kib(a, BLOCK), 4, "one page written");
        let b = r.take().expect("a block");
        // SAFETY: as above.
        unsafe { ptr::write_bytes(b, 7, BLOCK) };
        assert!(r.give_back(b));
        assert_eq!(resident_kib(b, BLOCK), 8, "kept as the one spare block");
        assert!(r.give_back(a));
        assert_eq!(
            resident_kib(a, BLOCK),
            0,
            "past the spare count: given back"
        );
    }

    #[test]
    fn the_allocator_serves_vectors_of_every_size_from_many_threads() {
        static A: Allocator = Allocator::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..2000usize {
                        let size = [BLOCK, 100, BLOCK, 3 * BLOCK, BLOCK / 2][i % 5];
                        let layout = Layout::from_size_align(size, 8).expect("layout");
                        // SAFETY: non-zero sizes; every block is freed once with its layout.
                        unsafe {
                            let p = A.alloc(layout);
                            assert!(!p.is_null());
                            ptr::write_bytes(p, (t * 31 + i) as u8, size);
                            held.push((p, layout, (t * 31 + i) as u8));
                            if i % 3 == 0 {
                                let (p, layout, v) = held.swap_remove(held.len() / 2);
                                assert!((0..layout.size()).all(|k| *p.add(k) == v));
                                // Grow one of them across the block size, and back.
                                let q = A.realloc(p, layout, 2 * BLOCK);
                                assert!((0..layout.size()).all(|k| *q.add(k) == v));
                                let grown = Layout::from_size_align(2 * BLOCK, 8).expect("l");
                                A.dealloc(q, grown);
                            }
                        }
                    }
                    for (p, layout, v) in held {
                        // SAFETY: allocated above with this layout, freed once.
                        unsafe {
                            assert!((0..layout.size()).all(|k| *p.add(k) == v));
                            A.dealloc(p, layout);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert!(A.region.contains(A.region.take().expect("a block")));
    }
}
