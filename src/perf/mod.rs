//! The kernel's perf interface: `perf_event_attr`, raw records and their
//! decoding, and (in `sys`) the syscall, ioctls and mmap ring buffers.

pub mod attr;
pub mod data;
pub mod pmu;
pub mod record;
pub mod sys;
