//! The .msen container: byte layouts, writer, reader with recovery, metadata.
//! formats/trace-format.md is the normative description.

pub mod delta;
pub mod format;
pub mod merge;
pub mod meta;
pub mod outfile;
pub mod pool;
pub mod reader;
pub mod source;
pub mod writer;

pub use format::{BlockKind, STREAM_GLOBAL};
pub use meta::{CaptureEnd, Metadata};
pub use outfile::OutFile;
pub use reader::{OpenOptions, Trace, TraceError};
pub use writer::{BlockBuffer, BlockInfo, TraceWriter};
