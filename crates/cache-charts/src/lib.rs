#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod data;
mod draw;

pub use data::{points, Point};
pub use draw::{draw_all, LATENCY_CELL};
