//! The metadata service over the network, for clusters of many nodes.
//!
//! A metadata process (`silt serve --roles metadata`) serves the metadata API of its store
//! (SQLite or PostgreSQL) and the group coordinator over HTTP/2, with MessagePack bodies
//! ([`wire`], generated from the API table `silt_metadata::metadata_api!`), plus a change
//! feed that wakes long polls on every node. With PostgreSQL, several metadata processes
//! share one database and exactly one is active: the holder of a lease ([`lease`]); the
//! others answer 503 and clients fail over to the active one. [`MetadataClient`] implements every role trait and
//! [`silt_groups::GroupService`] for every other role, so ingest, reader and the front
//! doors do not know whether metadata is in-process or remote.
//!
//! This crate sits beside `silt-metadata` rather than in it because it hosts the group
//! coordinator, which itself depends on `silt-metadata`. Depends on `silt-metadata`,
//! `silt-groups`, `silt-tls`, axum (server) and reqwest (client).

mod client;
pub mod lease;
mod server;
pub mod wire;

pub use client::{ClientConfig, MetadataClient};
pub use server::{MetadataService, MetricsRenderer, serve};
