//! hookhost: an OCI hook host whose device and file injection policies are
//! WebAssembly components.
//!
//! The modules follow the data: the [`context`] of the container being
//! started and the [`config`] of the installed plugins go into the plugin
//! [`runtime`]; [`evaluate`] runs the active plugins and merges their
//! requests into one [`plan`]; back ends consume the plan ([`dry_run`]
//! shows it). [`hostfs`] is the confined view of the host that plugins get.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod context;
pub mod dry_run;
pub mod evaluate;
pub mod executor;
pub mod hostfs;
pub mod input;
pub mod plan;
pub mod requests;
pub mod runtime;
pub mod static_policy;
