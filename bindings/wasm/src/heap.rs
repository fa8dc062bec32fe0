//! The module's allocator: power-of-two size classes, each with a free list, carved from
//! memory that only grows (WebAssembly memory never shrinks).
//!
//! A request takes the smallest class at least as large as its size and its alignment (16
//! bytes and up); a freed block goes to the front of its class's list and is the next one that
//! class hands out. A block of a class is aligned to its size (to a page above a page), so any
//! block of the list suits any request of the class. New blocks are cut from the end of the
//! heap; the bytes skipped to align one are cut into aligned blocks of smaller classes and
//! freed, so nothing is lost. The price is up to half of a block unused (a `Vec` grows by
//! doubling, so its buffers fill their classes) and blocks that stay in their class once
//! freed; the gain is about 1 KB of code where the general-purpose allocator took 5.5 KB, in a
//! module every page downloads. The worker's state (a tab's locks and leases) is small.
//!
//! Single-threaded: the module runs in one JavaScript thread (no shared memory).
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// The smallest class: 2^4 = 16 bytes, room for the free list's link on every target.
const MIN_CLASS: u32 = 4;
/// Classes 2^0 .. 2^31 (the lowest four unused): nothing in wasm32's 4 GiB is larger.
const CLASSES: usize = 32;
/// WebAssembly's page.
pub(crate) const PAGE: usize = 65_536;

/// Where new memory comes from: `grow(pages)` adds `pages` pages and returns the address of
/// the first new byte, or `None` if there is no more.
pub(crate) trait Memory {
    fn grow(&mut self, pages: usize) -> Option<usize>;
}

/// The heap: each class's first free block (0: none) and the part of the last grown region
/// not yet cut into blocks.
pub(crate) struct Heap<M> {
    free: [usize; CLASSES],
    next: usize,
    end: usize,
    memory: M,
}

impl<M: Memory> Heap<M> {
    pub(crate) const fn new(memory: M) -> Self {
        Heap {
            free: [0; CLASSES],
            next: 0,
            end: 0,
            memory,
        }
    }

    /// Returns a block for `layout`, or null if memory is exhausted.
    ///
    /// # Safety
    /// The returned block must be given back with [`Heap::free`] and the same layout.
    pub(crate) unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return ptr::null_mut();
        };
        match self.free.get(class).copied() {
            Some(0) => self.cut(class),
            Some(block) => {
                // SAFETY: a free block holds the address of the next free block of its class.
                let next = unsafe { (block as *const usize).read() };
                self.push_list(class, next);
                block as *mut u8
            }
            None => ptr::null_mut(),
        }
    }

    /// Gives a block back.
    ///
    /// # Safety
    /// `block` came from [`Heap::alloc`] (or [`Heap::realloc`]) with this `layout`.
    pub(crate) unsafe fn free(&mut self, block: *mut u8, layout: Layout) {
        if let Some(class) = class_of(layout) {
            // SAFETY: the block is at least 16 bytes, aligned to 16, and no longer in use.
            unsafe { self.release(class, block as usize) };
        }
    }

    /// Resizes a block: in place if the new size falls in the same class.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    pub(crate) unsafe fn realloc(
        &mut self,
        block: *mut u8,
        layout: Layout,
        size: usize,
    ) -> *mut u8 {
        let Ok(wanted) = Layout::from_size_align(size, layout.align()) else {
            return ptr::null_mut();
        };
        if class_of(wanted) == class_of(layout) {
            return block;
        }
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { self.alloc(wanted) };
        if !moved.is_null() {
            // SAFETY: both blocks hold at least the smaller size and do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(size));
                self.free(block, layout);
            }
        }
        moved
    }

    fn push_list(&mut self, class: usize, block: usize) {
        if let Some(head) = self.free.get_mut(class) {
            *head = block;
        }
    }

    /// Puts `block` (of `class`) at the front of its class's list.
    unsafe fn release(&mut self, class: usize, block: usize) {
        let head = self.free.get(class).copied().unwrap_or(0);
        // SAFETY: the block is unused and has room for one address.
        unsafe { (block as *mut usize).write(head) };
        self.push_list(class, block);
    }

    /// Cuts a new block of `class` from the end of the heap, growing memory if needed.
    fn cut(&mut self, class: usize) -> *mut u8 {
        let size = 1usize << class;
        let align = size.min(PAGE);
        loop {
            let start = self.next.next_multiple_of(align);
            if let Some(after) = start.checked_add(size) {
                if self.end != 0 && after <= self.end {
                    self.give_back(self.next, start);
                    self.next = after;
                    return start as *mut u8;
                }
            }
            let Some(needed) = size.checked_add(align) else {
                return ptr::null_mut();
            };
            let pages = needed.div_ceil(PAGE);
            let Some(region) = self.memory.grow(pages) else {
                return ptr::null_mut();
            };
            if region != self.end {
                // Not contiguous with the last region (the first growth): what was left of
                // the last one is cut into blocks and freed.
                self.give_back(self.next, self.end);
                self.next = region;
            }
            self.end = region + pages * PAGE;
        }
    }

    /// Frees `from..to` (both multiples of 16) as the largest aligned blocks that fit.
    fn give_back(&mut self, mut from: usize, to: usize) {
        while from < to {
            let fits = usize::BITS - 1 - (to - from).leading_zeros();
            let aligned = from.trailing_zeros();
            let class = fits.min(aligned).min(PAGE.trailing_zeros()) as usize;
            // SAFETY: from..from + 2^class lies in memory this heap owns and never handed out.
            unsafe { self.release(class, from) };
            from += 1 << class;
        }
    }
}

/// The class of a request: log2 of its size and alignment rounded up to a power of two (at
/// least 16); `None` if too large or aligned beyond a page.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > PAGE {
        return None;
    }
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS);
    let class = size.checked_next_power_of_two()?.trailing_zeros() as usize;
    (class < CLASSES).then_some(class)
}

/// The wasm32 module's memory: `memory.grow`.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Wasm;

#[cfg(target_arch = "wasm32")]
impl Memory for Wasm {
    fn grow(&mut self, pages: usize) -> Option<usize> {
        let before = core::arch::wasm32::memory_grow(0, pages);
        (before != usize::MAX).then(|| before * PAGE)
    }
}

/// The global allocator over a [`Heap`].
pub(crate) struct Global<M>(UnsafeCell<Heap<M>>);

impl<M: Memory> Global<M> {
    pub(crate) const fn new(memory: M) -> Self {
        Global(UnsafeCell::new(Heap::new(memory)))
    }
}

// SAFETY: the module has one thread (wasm32 without shared memory); nothing else reaches the
// heap, and no call into it re-enters it.
unsafe impl<M> Sync for Global<M> {}

// SAFETY: the heap hands out distinct blocks of at least the size and alignment asked for.
unsafe impl<M: Memory> GlobalAlloc for Global<M> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, no re-entry: this is the only reference to the heap now.
        unsafe { (*self.0.get()).alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: as above; the caller's contract is the heap's.
        unsafe { (*self.0.get()).free(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { (*self.0.get()).realloc(block, layout, size) }
    }
}

impl<M> core::fmt::Debug for Global<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Global")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A memory of fixed pages inside a test buffer, as `memory.grow` would hand them out.
    struct Arena {
        base: usize,
        pages: usize,
        limit: usize,
    }

    impl Memory for Arena {
        fn grow(&mut self, pages: usize) -> Option<usize> {
            if self.pages + pages > self.limit {
                return None;
            }
            let at = self.base + self.pages * PAGE;
            self.pages += pages;
            Some(at)
        }
    }

    fn arena(buffer: &mut Vec<u8>, limit: usize) -> Arena {
        buffer.resize((limit + 1) * PAGE, 0);
        let base = (buffer.as_mut_ptr() as usize).next_multiple_of(PAGE);
        Arena {
            base,
            pages: 0,
            limit,
        }
    }

    /// A tiny deterministic generator (xorshift), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_keep_their_bytes() {
        let mut buffer = Vec::new();
        let mut heap = Heap::new(arena(&mut buffer, 512));
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        // (address, layout, fill byte)
        let mut live: Vec<(usize, Layout, u8)> = Vec::new();
        for step in 0..20_000u32 {
            let roll = rng.next();
            if live.len() < 50 || (live.len() < 400 && roll % 2 == 0) {
                let size = match roll % 7 {
                    0 => (roll >> 8) as usize % 70_000,
                    _ => (roll >> 8) as usize % 300,
                };
                let align = 1usize << ((roll >> 40) % 7);
                let layout = Layout::from_size_align(size, align).unwrap_or(Layout::new::<u8>());
                // SAFETY: freed below with the same layout.
                let block = unsafe { heap.alloc(layout) } as usize;
                assert_ne!(block, 0, "step {step}: out of memory");
                assert_eq!(block % align, 0, "step {step}: misaligned");
                let fill = (step % 251) as u8;
                // SAFETY: the block has `size` bytes.
                unsafe { ptr::write_bytes(block as *mut u8, fill, size) };
                live.push((block, layout, fill));
            } else {
                let at = (roll >> 16) as usize % live.len();
                let (block, layout, fill) = live.swap_remove(at);
                // SAFETY: allocated above with this layout.
                let bytes =
                    unsafe { core::slice::from_raw_parts(block as *const u8, layout.size()) };
                assert!(
                    bytes.iter().all(|b| *b == fill),
                    "step {step}: bytes overwritten"
                );
                if roll % 5 == 0 {
                    let size = (roll >> 24) as usize % 5_000;
                    // SAFETY: the block and its layout are live.
                    let moved = unsafe { heap.realloc(block as *mut u8, layout, size) } as usize;
                    assert_ne!(moved, 0);
                    let kept = layout.size().min(size);
                    // SAFETY: the moved block has `size` bytes.
                    let bytes = unsafe { core::slice::from_raw_parts(moved as *const u8, kept) };
                    assert!(
                        bytes.iter().all(|b| *b == fill),
                        "step {step}: realloc lost bytes"
                    );
                    // SAFETY: as above.
                    unsafe { ptr::write_bytes(moved as *mut u8, fill, size) };
                    let layout = Layout::from_size_align(size, layout.align()).unwrap_or(layout);
                    live.push((moved, layout, fill));
                } else {
                    // SAFETY: allocated above with this layout.
                    unsafe { heap.free(block as *mut u8, layout) };
                }
            }
            if step % 1_000 == 0 {
                let mut spans: Vec<(usize, usize)> = live
                    .iter()
                    .map(|(block, layout, _)| (*block, block + layout.size().max(1)))
                    .collect();
                spans.sort_unstable();
                assert!(
                    spans
                        .windows(2)
                        .all(|pair| pair.first().map(|p| p.1) <= pair.last().map(|p| p.0)),
                    "step {step}: blocks overlap"
                );
            }
        }
    }

    #[test]
    fn freed_blocks_are_reused_and_exhaustion_is_null() {
        let mut buffer = Vec::new();
        let mut heap = Heap::new(arena(&mut buffer, 4));
        let layout = Layout::from_size_align(1000, 8).unwrap_or(Layout::new::<u8>());
        // SAFETY: freed at once with the same layout.
        let first = unsafe { heap.alloc(layout) };
        unsafe { heap.free(first, layout) };
        // SAFETY: as above.
        let again = unsafe { heap.alloc(layout) };
        assert_eq!(first, again, "a freed block is handed out next");
        // 4 pages of 1 KB blocks, then nothing more: null, not a panic.
        let mut count = 1;
        // SAFETY: never freed; the arena outlives the heap's use.
        while !unsafe { heap.alloc(layout) }.is_null() {
            count += 1;
        }
        assert!(count >= 4 * PAGE / 1024 - 2, "{count} blocks from 4 pages");
        let huge = Layout::from_size_align(usize::MAX / 2, 8).unwrap_or(layout);
        // SAFETY: null expected.
        assert!(unsafe { heap.alloc(huge) }.is_null());
    }
}
