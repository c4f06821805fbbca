//! Names for addresses: ELF symbol tables of user-space binaries and the
//! kernel's kallsyms captured in the trace. An address that does not resolve
//! is a value with a reason (`Unresolved`), never an error.

pub mod dwarf;
pub mod elf;
pub mod embedded;
pub mod kallsyms;
pub mod resolver;
pub mod standalone;

pub use resolver::{Resolved, Resolver, Unresolved};
