//! Arbitrary bytes, read as text, through the one URL parser, the redactor and the
//! parameter readers: nothing may panic, a refusal is `Config`, and a parsed password
//! never shows in the redacted URL.

#![no_main]

use cache_api::CacheError;
use cache_url_core::{key_prefix, parse_bool, parse_count, parse_duration, redact, CacheUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match CacheUrl::parse(&text) {
        Ok(url) => {
            // A short password, one made of the mask's own characters (`***`), or one
            // also written elsewhere in the URL proves nothing when it shows.
            let telling = |password: &&str| {
                password.len() >= 4 && password.chars().any(char::is_alphanumeric)
            };
            if let Some(password) = url.password().filter(telling) {
                if text.matches(password).count() == 1 {
                    assert!(!url.redacted().contains(password), "{text:?}");
                }
            }
            let _ = (
                url.hosts().len(),
                url.per_host_urls("redis"),
                url.scrub(&text),
            );
        }
        Err(CacheError::Config { .. }) => {}
        Err(other) => panic!("parse({text:?}): {other:?}"),
    }
    let _ = (redact(&text), key_prefix(&text));
    let _ = (parse_duration(&text), parse_count(&text), parse_bool(&text));
});
