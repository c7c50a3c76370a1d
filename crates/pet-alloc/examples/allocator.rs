//! pet-alloc on its own: mimalloc as the global allocator with freed memory kept mapped, as the
//! `pet` binary sets it up; a few large allocations freed and made again.
//!
//! Run with `cargo run -p pet-alloc --example allocator`.

#[global_allocator]
static ALLOCATOR: pet_alloc::Allocator = pet_alloc::Allocator;

fn main() {
    pet_alloc::keep_freed_memory();
    let mut total = 0usize;
    for step in 0..8 {
        // 64 MiB per step, freed at the end of the iteration and reused by the next one.
        let buffer = vec![step as u8; 64 << 20];
        total += buffer.iter().step_by(4096).map(|&b| b as usize).sum::<usize>();
    }
    println!("8 allocations of 64 MiB made and freed (checksum {total})");
}
