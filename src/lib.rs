//! dlrepo: an artifact repository server on a single-threaded io_uring
//! runtime, wire- and disk-compatible with dlrepo 0.44.
//!
//! Layers, each depending only on the ones below it:
//! `http` (routing, resources, responses) → `store` (the on-disk tree,
//! blobs, uploads) and `cleanup` (background GC) → `io` (every disk
//! operation, submitted to the ring).

pub mod auth;
pub mod body;
pub mod cleanup;
pub mod cli_slot;
pub mod config;
pub mod http;
pub mod io;
pub mod logging;
pub mod names;
pub mod pathmap;
pub mod publish;
pub mod store;
