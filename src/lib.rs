//! contact-sync: keeps an SMS provider's address book in step with a CSV file.
//!
//! The pipeline, one module per stage: [`reader`] decodes and streams records,
//! [`columns`] maps the header to fields, [`normalize`] validates each row,
//! [`report`] writes what happened to every row. `sync` adds the planner,
//! dispatcher and providers; [`sandbox`] emulates the providers on loopback.

pub mod codes;
pub mod columns;
pub mod dispatch;
pub mod normalize;
pub mod record;
#[cfg(feature = "sandbox")]
pub mod sandbox;
