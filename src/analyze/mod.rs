//! Offline analyses over an opened trace: report, info, script. Each decodes
//! blocks in parallel and merges partial results with a total order, so the
//! output is the same at any thread count.

pub mod agent;
pub mod branch;
pub mod c2c;
pub mod callgraph;
pub mod chains;
pub mod datasrc;
pub mod diff;
pub mod embed;
pub mod events;
pub mod false_share;
pub mod flows;
pub mod info;
pub mod loaded;
pub mod numa;
pub mod report;
pub mod script;
pub mod stacks;
pub mod timeline;
pub mod unwind;

pub use loaded::{LoadOptions, Loaded};
