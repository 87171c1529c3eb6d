//! What the benchmarks share, by job: `load.rs` generates the load, `report.rs` measures and
//! prints it, `sidecar.rs` prepares the sidecar under test. Each bench is its own crate and
//! uses part of this, hence the allowances for unused items.

mod load;
mod report;
mod sidecar;

#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use report::*;
#[allow(unused_imports)]
pub use sidecar::*;
