//! `msen record`: capability probing, event setup, ring-buffer draining into
//! trace blocks, and the metadata a trace needs to be read elsewhere.

pub mod agent;
pub mod anomaly;
pub mod attrs;
pub mod chunker;
pub mod control;
pub mod events;
pub mod host;
pub mod mock;
pub mod procscan;
pub mod rollup;
pub mod session;
pub mod sysinfo;

pub use session::{
    planned_attrs, record, FlowMode, RecordConfig, RecordError, RecordSummary, RotationConfig, Sampling, SwitchOutput, Target,
};
