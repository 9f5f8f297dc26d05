#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod params;
mod parse;
mod redact;

pub use params::{parse_bool, parse_count, parse_duration, parse_number, Params, TLS_PARAMS};
pub use parse::{CacheUrl, Host};
pub use redact::{check_prefix_delimiter, key_prefix, redact, scrub, split_off_params, NOT_A_URL};
