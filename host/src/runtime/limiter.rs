//! What one plugin's store may hold, all its core instances together.
//!
//! A component is many core instances, each free to define memories and
//! tables: a cap per memory would give a component of N memories N times its
//! `memory-mib`. The cap is on the store's running total instead, and the
//! number of instances, memories and tables is bounded too (each memory is a
//! large virtual reservation even when empty).

/// Most core instances in one plugin's store (a Rust component has 3, a
/// componentize-py one 14).
pub const MAX_INSTANCES: usize = 64;
/// Most linear memories in one store (the components we build have one).
pub const MAX_MEMORIES: usize = 8;
/// Most tables in one store (the components we build have two).
pub const MAX_TABLES: usize = 16;
/// Most table elements, all tables together (a componentize-py component
/// starts with about 5,800; each element is a pointer of host memory).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The store's limiter; remembers whether the memory cap was hit so the trap
/// can be reported as what it is.
pub struct StoreCap {
    /// Bytes of linear memory, all memories together.
    memory_limit: usize,
    /// Bytes granted so far, creations and growths of every memory.
    memory_granted: usize,
    table_elements: usize,
    pub exceeded: bool,
}

impl StoreCap {
    pub fn new(memory_limit: usize) -> Self {
        StoreCap {
            memory_limit,
            memory_granted: 0,
            table_elements: 0,
            exceeded: false,
        }
    }
}

// The totals are never lowered: nothing in a store is freed before the store
// itself, and `*_grow_failed` does not say which growth failed (it is also
// called for growths never asked of `*_growing`). A growth that will fail
// for certain, past the memory's or table's own maximum, is refused here
// uncounted, as wasm would refuse it; what is left (the system out of
// memory) is counted, which errs on the side of the cap.
impl wasmtime::ResourceLimiter for StoreCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let total = self
            .memory_granted
            .saturating_add(desired.saturating_sub(current));
        if total > self.memory_limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit of {} bytes reached, all memories together",
                self.memory_limit
            );
        }
        self.memory_granted = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let total = self
            .table_elements
            .saturating_add(desired.saturating_sub(current));
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    const PAGE: usize = 64 << 10;

    #[test]
    fn memories_each_under_the_cap_are_refused_together_over_it() {
        let mut cap = StoreCap::new(10 * PAGE);
        // Three memories created with 4 pages each: the third is over.
        assert!(cap.memory_growing(0, 4 * PAGE, None).unwrap());
        assert!(cap.memory_growing(0, 4 * PAGE, None).unwrap());
        assert!(!cap.exceeded);
        assert!(cap.memory_growing(0, 4 * PAGE, None).is_err());
        assert!(cap.exceeded);
    }

    #[test]
    fn growths_of_different_memories_add_up() {
        let mut cap = StoreCap::new(10 * PAGE);
        assert!(cap.memory_growing(0, PAGE, None).unwrap());
        assert!(cap.memory_growing(0, PAGE, None).unwrap());
        // Each memory grows from its own size: 1 → 5 and 1 → 5 is 10 pages.
        assert!(cap.memory_growing(PAGE, 5 * PAGE, None).unwrap());
        assert!(cap.memory_growing(PAGE, 5 * PAGE, None).unwrap());
        assert!(cap.memory_growing(5 * PAGE, 6 * PAGE, None).is_err());
        assert!(cap.exceeded);
    }

    #[test]
    fn a_growth_past_the_memory_maximum_is_refused_and_not_counted() {
        let mut cap = StoreCap::new(10 * PAGE);
        assert!(cap.memory_growing(0, PAGE, Some(2 * PAGE)).unwrap());
        // Asked again and again, a refused growth never uses up the cap.
        for _ in 0..100 {
            assert!(!cap.memory_growing(PAGE, 8 * PAGE, Some(2 * PAGE)).unwrap());
        }
        assert!(!cap.exceeded);
        assert!(cap.memory_growing(0, 9 * PAGE, None).unwrap());
    }

    #[test]
    fn a_failed_growth_does_not_give_back_what_was_granted() {
        let mut cap = StoreCap::new(10 * PAGE);
        assert!(cap.memory_growing(0, 6 * PAGE, None).unwrap());
        // Reported without saying which growth: the 6 pages stay counted.
        cap.memory_grow_failed(wasmtime::Error::msg("no memory"))
            .unwrap();
        assert!(cap.memory_growing(0, 6 * PAGE, None).is_err());
    }

    #[test]
    fn table_elements_are_capped_across_tables() {
        let mut cap = StoreCap::new(0);
        let half = MAX_TABLE_ELEMENTS / 2;
        assert!(cap.table_growing(0, half, None).unwrap());
        assert!(cap.table_growing(0, half, None).unwrap());
        assert!(!cap.table_growing(0, 1, None).unwrap());
        assert!(!cap.table_growing(0, 2, Some(1)).unwrap());
    }

    #[test]
    fn counts_are_bounded() {
        let cap = StoreCap::new(0);
        assert_eq!(
            (cap.instances(), cap.memories(), cap.tables()),
            (MAX_INSTANCES, MAX_MEMORIES, MAX_TABLES)
        );
    }
}
