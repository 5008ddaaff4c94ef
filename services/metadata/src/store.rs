//! The metadata API as role traits: each component asks for the roles it uses, so its
//! signature says what it may touch (ingest commits to the log, readers look the log up,
//! the compactor rewrites it, the doors serve the catalog, groups and security).
//!
//! The traits are generated from the one table in [`crate::api`]; [`Watch`] (local
//! high-watermark channels, not a call) is written here. [`MetadataStore`] is every role
//! at once: what a store implements, and what the binary hands around before narrowing.

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::watch::WatchEvent;

/// Defines one `#[async_trait]` trait per role of the table.
macro_rules! define_role_traits {
    ($(
        $(#[$trait_doc:meta])*
        $role:ident $(: $sup:ident)? {
            $(
                $(#[$doc:meta])*
                $policy:ident fn $method:ident($($arg:ident: $ty:ty $(as $wire:ty)?),* $(,)?) -> $ret:ty => $variant:ident;
            )*
        }
    )*) => {
        $(
            $(#[$trait_doc])*
            #[async_trait]
            pub trait $role: $($sup +)? Send + Sync + 'static {
                $(
                    $(#[$doc])*
                    async fn $method(&self, $($arg: $ty),*) -> crate::Result<$ret>;
                )*
            }
        )*

        /// Every role at once: what a store implements, and what the binary hands around
        /// before giving each component the roles it uses.
        pub trait MetadataStore: $($role +)* Watch {}

        impl<T: $($role +)* Watch> MetadataStore for T {}
    };
}

crate::metadata_api!(define_role_traits);

/// High-watermark changes, as local channels: what long polls wait on.
pub trait Watch: Send + Sync + 'static {
    /// Every high-watermark change and topic deletion from now on (what the metadata
    /// service streams to remote readers).
    fn watch_feed(&self) -> broadcast::Receiver<WatchEvent>;

    /// A receiver that changes whenever the high watermark of `topic`/`partition` moves.
    /// Subscribe first, then read the offsets, then wait: no commit is missed in between.
    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64>;
}
