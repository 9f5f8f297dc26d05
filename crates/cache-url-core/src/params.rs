//! The query of a cache URL, and the one grammar of each kind of value it carries.
//!
//! Every parameter is taken by name by the code that understands it; what is left at
//! [`Params::finish`] is an unknown parameter, reported by name. Values are never
//! repeated in a message: a secret pasted into the wrong parameter must not reach a log.

use std::{str::FromStr, time::Duration};

use cache_api::CacheError;

/// The parameters of a URL's query, percent-decoded (`+` is a space). A string value
/// is trimmed; a number, duration or boolean must be written without spaces around it
/// (so `pool_size=+3`, whose `+` is a space, is refused).
///
/// A parameter is set once: a value given twice (or under two names of one setting) and
/// a value that is not UTF-8 once decoded are refused when the parameter is taken, never
/// silently dropped or altered (two prefixes that differ only in such bytes would
/// otherwise name one namespace).
///
/// ```
/// use std::time::Duration;
/// use cache_url_core::Params;
///
/// let mut params = Params::from_query("timeout=0.5&pool_size=4&colour=red");
/// assert_eq!(params.take_duration("timeout")?, Some(Duration::from_millis(500)));
/// assert_eq!(params.take_count("pool_size")?, Some(4));
/// let err = params.finish("redis", &["timeout", "pool_size"]).unwrap_err();
/// assert!(err.to_string().contains("\"colour\""));
/// # Ok::<(), cache_api::CacheError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// In the order of the query.
    pairs: Vec<Pair>,
}

/// One `name=value` of a query.
#[derive(Clone, PartialEq, Eq)]
struct Pair {
    /// Decoded; lossily when it is not UTF-8.
    name: String,
    /// Decoded (not trimmed); `None` when it is not UTF-8 once decoded.
    value: Option<String>,
    /// Whether some code took it (understood it).
    taken: bool,
    /// Whether the pair has no `=` at all: a lone word.
    valueless: bool,
}

impl std::fmt::Debug for Params {
    /// Names only: a value may be a secret pasted in the wrong place; so may a lone
    /// word without a value, which is not shown either (as [`Params::finish`] does).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|pair| {
                if pair.valueless {
                    "<word without a value>"
                } else if is_parameter_name(&pair.name) {
                    pair.name.as_str()
                } else {
                    "<odd name>"
                }
            }))
            .finish()
    }
}

impl Params {
    /// Reads a query string (without the `?`); empty pairs (`a=1&&b=2`) are ignored. A
    /// pair with an empty name (`=1`) is kept, so that [`Params::finish`] refuses it.
    #[must_use]
    pub fn from_query(query: &str) -> Self {
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                // A name that is not UTF-8 matches no parameter: it is reported unknown.
                let name = form_decode(name).unwrap_or_else(|lossy| lossy);
                let value = form_decode(value).ok();
                Pair {
                    name,
                    value,
                    taken: false,
                    valueless: !pair.contains('='),
                }
            })
            .collect();
        Self { pairs }
    }

    /// Whether the query holds no parameter.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The names of the parameters not yet taken, in query order.
    pub fn remaining(&self) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(|pair| !pair.taken)
            .map(|pair| pair.name.as_str())
    }

    /// Takes the parameter named one of `names` (aliases of one setting).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter when it is given more than once
    /// (under one name or several), when its value is not UTF-8 once decoded, or when
    /// it is only spaces (which trimmed would read as empty: for a prefix, no prefix).
    pub fn take_string(&mut self, names: &[&str]) -> Result<Option<String>, CacheError> {
        let Some(value) = self.take_as_written(names)? else {
            return Ok(None);
        };
        let trimmed = value.trim();
        if trimmed.is_empty() && !value.is_empty() {
            // Read as empty, `?prefix=+` would mean no prefix at all: a `clear` of the
            // whole database where a prefix was meant.
            let name = names.first().copied().unwrap_or("value");
            return Err(CacheError::config(format!(
                "the url parameter {name} is only spaces: give a value, or leave it empty"
            )));
        }
        Ok(Some(trimmed.to_owned()))
    }

    /// Takes the parameter named one of `names`, its value decoded but not trimmed.
    fn take_as_written(&mut self, names: &[&str]) -> Result<Option<String>, CacheError> {
        let mut found: Vec<(&str, Option<&str>)> = Vec::new();
        for pair in &mut self.pairs {
            if names.contains(&pair.name.as_str()) {
                pair.taken = true;
                found.push((pair.name.as_str(), pair.value.as_deref()));
            }
        }
        match found.as_slice() {
            [] => Ok(None),
            [(_, Some(value))] => Ok(Some((*value).to_owned())),
            [(name, None)] => Err(CacheError::config(format!(
                "the url parameter {name} is not utf-8 once decoded"
            ))),
            [(first, _), rest @ ..] => Err(match rest.iter().find(|(name, _)| name != first) {
                Some((other, _)) => CacheError::config(format!(
                    "the url parameters {first} and {other} name one setting: give one of them, once"
                )),
                None => CacheError::config(format!(
                    "the url parameter {first} is given {} times: give it once",
                    found.len()
                )),
            }),
        }
    }

    /// Takes `name` and reads it with `read`, which returns `None` for a value it does
    /// not accept; then the error says that `name` must be `expected`. A value with
    /// spaces around it (a `+` in a query is a space) is refused without reading it.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter and what it must be.
    pub fn take_with<T>(
        &mut self,
        name: &str,
        expected: &str,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, CacheError> {
        match self.take_as_written(&[name])? {
            None => Ok(None),
            Some(value) => (value.trim() == value)
                .then(|| read(&value))
                .flatten()
                .map(Some)
                .ok_or_else(|| {
                    // A number refused is out of range (too large, or zero where it
                    // must be positive); not shown, as no value of a query is.
                    if is_digits(&value) {
                        must_be(
                            name,
                            &format!("{expected} (the number given is out of range)"),
                        )
                    } else {
                        must_be(name, expected)
                    }
                }),
        }
    }

    /// Takes a positive duration ([`parse_duration`], zero refused).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter when it is no positive duration.
    pub fn take_duration(&mut self, name: &str) -> Result<Option<Duration>, CacheError> {
        self.take_with(name, POSITIVE_DURATION, |value| {
            parse_duration(value).filter(|duration| !duration.is_zero())
        })
    }

    /// Takes a duration that may be zero ([`parse_duration`]), for intervals where zero
    /// means "every time".
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter when it is no duration.
    pub fn take_duration_or_zero(&mut self, name: &str) -> Result<Option<Duration>, CacheError> {
        self.take_with(name, DURATION, parse_duration)
    }

    /// Takes a whole number of at least 1 ([`parse_count`]).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter when it is no such number.
    pub fn take_count(&mut self, name: &str) -> Result<Option<usize>, CacheError> {
        self.take_with(name, "a whole number of at least 1", parse_count)
    }

    /// Takes a number of any type that parses from its decimal form, written in plain
    /// digits ([`parse_number`]): a database number, a byte budget, a number of retries
    /// that may be 0.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter and `expected`.
    pub fn take_number<T: FromStr>(
        &mut self,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, CacheError> {
        self.take_with(name, expected, parse_number)
    }

    /// Takes a boolean ([`parse_bool`]).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the parameter when it is no boolean.
    pub fn take_bool(&mut self, name: &str) -> Result<Option<bool>, CacheError> {
        self.take_with(name, "true or false", parse_bool)
    }

    /// Refuses the parameters in `names` that are present: they have a meaning on other
    /// schemes but none on `scheme` (`because` says why).
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the first such parameter.
    pub fn refuse(&self, scheme: &str, names: &[&str], because: &str) -> Result<(), CacheError> {
        match self
            .pairs
            .iter()
            .find(|pair| names.contains(&pair.name.as_str()))
        {
            Some(Pair { name, .. }) => Err(CacheError::config(format!(
                "the url parameter {name} does not apply to {scheme}://, {because}"
            ))),
            None => Ok(()),
        }
    }

    /// Ends the reading: a parameter nobody took is unknown to `scheme`.
    ///
    /// # Errors
    ///
    /// [`CacheError::Config`] naming the first unknown parameter and listing `known`,
    /// or saying that a parameter has an empty name (`?=1`).
    pub fn finish(&self, scheme: &str, known: &[&str]) -> Result<(), CacheError> {
        let known = known.join(", ");
        let first = self.pairs.iter().find(|pair| !pair.taken);
        match first.map(|pair| (pair.name.as_str(), pair.valueless)) {
            Some(("", _)) => Err(CacheError::config(format!(
                "a {scheme}:// url parameter has an empty name (=value with nothing before \
                 the '='): every parameter is name=value (known: {known})"
            ))),
            // A lone word may be a password pasted into the query: it is not shown.
            Some((_, true)) => Err(CacheError::config(format!(
                "an unknown {scheme}:// url parameter without a value (no '='): every \
                 parameter is name=value (known: {known})"
            ))),
            // A name no parameter could have may be the tail of a password holding an
            // unencoded '?': it is not shown.
            Some((name, _)) if !is_parameter_name(name) => Err(CacheError::config(format!(
                "an unknown {scheme}:// url parameter, whose name holds characters no \
                     parameter name has (known: {known}; percent-encode '?' in a password)"
            ))),
            Some((name, _)) => Err(CacheError::config(format!(
                "unknown {scheme}:// url parameter {name:?} (known: {known})"
            ))),
            None => Ok(()),
        }
    }
}

/// The parameters of a URL whose scheme has TLS (`rediss://`, `memcaches://`...): the CA,
/// the client certificate and key (file paths), and whether to skip verifying the server.
/// A scheme without TLS refuses them whatever their value ([`Params::refuse`]).
pub const TLS_PARAMS: &[&str] = &["tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify"];

/// Decodes one name or value of a query as a form does: `+` is a space, then
/// percent-decoding. `Err` holds the lossy decoding of one that is not UTF-8.
pub(crate) fn form_decode(text: &str) -> Result<String, String> {
    let spaced = text.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).map_err(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// Whether `name` could be a parameter's name (and so is safe to show).
pub(crate) fn is_parameter_name(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const POSITIVE_DURATION: &str = "a positive duration such as 250ms, 2s or 0.5";
const DURATION: &str = "a duration such as 250ms, 2s or 0.5";

fn must_be(name: &str, expected: &str) -> CacheError {
    CacheError::config(format!("the url parameter {name} must be {expected}"))
}

/// The one duration grammar of cache URLs and of `cachectl`'s options: humantime's
/// (`250ms`, `2s`, `1m 30s`) or a plain number of seconds in digits with an optional
/// fraction (`0.5`, `2`). `None` for anything else: signs (`-1`, `+1`), exponents
/// (`1e3`) and words (`inf`) included. A fraction finer than a nanosecond is rounded
/// up: a number above zero never reads as zero (which, as a TTL, would delete).
///
/// ```
/// use std::time::Duration;
/// use cache_url_core::parse_duration;
///
/// assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
/// assert_eq!(parse_duration("-1"), None);
/// assert_eq!(parse_duration("+1"), None);
/// assert_eq!(parse_duration("0.0000000001"), Some(Duration::from_nanos(1)));
/// assert_eq!(parse_duration("0.000"), Some(Duration::ZERO));
/// ```
#[must_use]
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    humantime::parse_duration(value).ok().or_else(|| {
        let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
        if !is_digits(whole) || !is_digits(fraction) {
            return None;
        }
        value
            .parse::<f64>()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .map(|duration| {
                let above_zero = value.bytes().any(|digit| matches!(digit, b'1'..=b'9'));
                if duration.is_zero() && above_zero {
                    Duration::from_nanos(1)
                } else {
                    duration
                }
            })
    })
}

/// A whole number of at least 1 (a pool size, a connection count, a byte limit), in
/// plain digits ([`parse_number`]).
///
/// ```
/// assert_eq!(cache_url_core::parse_count("4"), Some(4));
/// assert_eq!(cache_url_core::parse_count("0"), None);
/// assert_eq!(cache_url_core::parse_count("+4"), None);
/// ```
#[must_use]
pub fn parse_count(value: &str) -> Option<usize> {
    parse_number(value.trim()).filter(|count| *count > 0)
}

/// A whole number written in plain ASCII digits, as every number of a cache URL is (a
/// port, a database, a count): no sign, no space, no underscore. `None` for anything
/// else, and for a number `T` cannot hold.
///
/// ```
/// assert_eq!(cache_url_core::parse_number::<u16>("6379"), Some(6379));
/// assert_eq!(cache_url_core::parse_number::<u16>("+6379"), None);
/// assert_eq!(cache_url_core::parse_number::<u16>("70000"), None);
/// assert_eq!(cache_url_core::parse_number::<u32>(""), None);
/// ```
#[must_use]
pub fn parse_number<T: FromStr>(value: &str) -> Option<T> {
    if is_digits(value) {
        value.parse().ok()
    } else {
        None
    }
}

/// Whether `text` is one or more ASCII digits and nothing else.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// `true`/`1` or `false`/`0`; a bare flag (`?trace`, an empty value) is `true`.
///
/// ```
/// assert_eq!(cache_url_core::parse_bool("1"), Some(true));
/// assert_eq!(cache_url_core::parse_bool(""), Some(true));
/// assert_eq!(cache_url_core::parse_bool("yes"), None);
/// ```
#[must_use]
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "true" | "1" | "" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: CacheError) -> String {
        cache_tck::config_message(Err::<(), _>(err))
    }

    #[test]
    fn values_are_decoded_and_trimmed() {
        let mut params = Params::from_query("key_prefix=+b%3A%2B+&&x=1&e=%C3%A9+%E2%9C%93");
        assert_eq!(
            params
                .take_string(&["prefix", "key_prefix"])
                .unwrap()
                .as_deref(),
            Some("b:+")
        );
        assert_eq!(params.take_string(&["e"]).unwrap().as_deref(), Some("é ✓"));
        assert_eq!(params.take_string(&["absent"]).unwrap(), None);
        assert_eq!(params.remaining().collect::<Vec<_>>(), ["x"]);
        assert!(Params::from_query("").is_empty());
    }

    #[test]
    fn a_setting_given_twice_is_refused_whatever_the_values() {
        for (query, said) in [
            ("prefix=a:&prefix=b:", "prefix is given 2 times"),
            (
                "timeout=1s&timeout=1s&timeout=2s",
                "timeout is given 3 times",
            ),
            ("timeout=abc&timeout=1s", "timeout is given 2 times"),
            (
                "prefix=a:&key_prefix=b:",
                "prefix and key_prefix name one setting",
            ),
            (
                "key_prefix=a:&prefix=a:",
                "key_prefix and prefix name one setting",
            ),
        ] {
            let mut params = Params::from_query(query);
            let err = if query.contains("timeout") {
                params.take_duration("timeout").unwrap_err()
            } else {
                params.take_string(&["prefix", "key_prefix"]).unwrap_err()
            };
            let shown = message(err);
            assert!(shown.contains(said), "{query}: {shown}");
            // Taken all the same: the error is about the setting, not an unknown name.
            assert_eq!(params.remaining().count(), 0, "{query}");
        }
    }

    #[test]
    fn a_value_of_only_spaces_is_refused_not_read_as_empty() {
        for query in ["prefix=+", "prefix=%20", "prefix=%09+", "prefix=%0A"] {
            let shown = message(
                Params::from_query(query)
                    .take_string(&["prefix", "key_prefix"])
                    .unwrap_err(),
            );
            assert!(shown.contains("prefix is only spaces"), "{query}: {shown}");
        }
        for (query, read) in [("prefix=", ""), ("prefix", ""), ("prefix=+app:+", "app:")] {
            let taken = Params::from_query(query)
                .take_string(&["prefix"])
                .map_err(message);
            assert_eq!(taken, Ok(Some(read.to_owned())), "{query}");
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_once_decoded_is_refused_not_altered() {
        // Decoded lossily, both would read as the replacement character: one namespace.
        for query in ["prefix=%E9:", "prefix=%E8:", "prefix=a%FF"] {
            let shown = message(
                Params::from_query(query)
                    .take_string(&["prefix", "key_prefix"])
                    .unwrap_err(),
            );
            assert!(shown.contains("prefix is not utf-8"), "{query}: {shown}");
        }
        let mut valid = Params::from_query("prefix=%EF%BF%BD:");
        assert_eq!(
            valid.take_string(&["prefix"]).unwrap().as_deref(),
            Some("\u{fffd}:")
        );
        // A name that is not UTF-8 is no parameter's name: unknown, and not shown.
        let odd = message(
            Params::from_query("pr%E9fix=a:")
                .finish("redis", &["prefix"])
                .unwrap_err(),
        );
        assert!(odd.contains("unknown"), "{odd}");
    }

    #[test]
    fn each_kind_of_value_has_one_grammar() {
        let mut params =
            Params::from_query("t=250ms&s=0.5&z=0&c=3&n=0&b=1&f=false&db=7&m=1m%2030s&neg=-1");
        assert_eq!(
            params.take_duration("t").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            params.take_duration("s").unwrap(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            params.take_duration_or_zero("z").unwrap(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            params.take_duration("m").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(params.take_count("c").unwrap(), Some(3));
        assert_eq!(params.take_bool("b").unwrap(), Some(true));
        assert_eq!(params.take_bool("f").unwrap(), Some(false));
        assert_eq!(
            params.take_number::<u32>("db", "a number").unwrap(),
            Some(7)
        );
        assert!(params.take_count("n").is_err());
        assert!(params.take_duration("neg").is_err());
        assert_eq!(params.take_duration("absent").unwrap(), None);
        params.finish("redis", &[]).unwrap();
    }

    #[test]
    fn errors_name_the_parameter_and_never_the_value() {
        for (query, take) in [
            ("timeout=hunter2", "duration"),
            ("timeout=0", "duration"),
            ("pool_size=hunter2", "count"),
            ("flag=hunter2", "bool"),
        ] {
            let mut params = Params::from_query(query);
            let name = query.split('=').next().unwrap();
            let err = match take {
                "duration" => params.take_duration(name).unwrap_err(),
                "count" => params.take_count(name).unwrap_err(),
                _ => params.take_bool(name).unwrap_err(),
            };
            let shown = message(err);
            assert!(shown.contains(name), "{query}: {shown}");
            assert!(!shown.contains("hunter2"), "{query}: {shown}");
            // A number refused is said to be out of range, not to be no number.
            assert_eq!(
                shown.contains("out of range"),
                query == "timeout=0",
                "{query}: {shown}"
            );
        }
        let unknown = message(
            Params::from_query("password=hunter2")
                .finish("memcache", &["prefix"])
                .unwrap_err(),
        );
        assert!(
            unknown.contains("\"password\"") && unknown.contains("known: prefix"),
            "{unknown}"
        );
        assert!(!unknown.contains("hunter2"), "{unknown}");
        let odd = message(Params::from_query("ss@h").finish("redis", &[]).unwrap_err());
        assert!(!odd.contains("ss@h"), "{odd}");
        let debug = format!("{:?}", Params::from_query("password=hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
        // A lone word may be a password pasted into the query: hidden as `redact` does.
        let debug = format!("{:?}", Params::from_query("timeout=1s&Zq9xPw"));
        assert!(
            debug.contains("timeout") && !debug.contains("Zq9xPw"),
            "{debug}"
        );
    }

    /// A pair with an empty name is refused by `finish`; an empty pair is no pair.
    #[test]
    fn a_parameter_with_an_empty_name_is_refused() {
        for query in ["=1", "&=x", "prefix=a:&=", "=&prefix=a:"] {
            let mut params = Params::from_query(query);
            params.take_string(&["prefix"]).unwrap();
            let shown = message(params.finish("redis", &["prefix"]).unwrap_err());
            assert!(shown.contains("empty name"), "{query}: {shown}");
        }
        for query in ["", "&", "prefix=a:&&", "&&prefix=a:"] {
            let mut params = Params::from_query(query);
            params.take_string(&["prefix"]).unwrap();
            params.finish("redis", &["prefix"]).unwrap();
        }
    }

    /// An unknown parameter without a value (a lone word, maybe a password pasted into
    /// the query) is refused without being named; one with a value is named.
    #[test]
    fn an_unknown_lone_word_is_refused_unnamed() {
        for query in ["S3cretPw", "prefix=a:&S3cretPw", "S3cretPw&colour=red"] {
            let mut params = Params::from_query(query);
            params.take_string(&["prefix"]).unwrap();
            let shown = message(params.finish("redis", &["prefix"]).unwrap_err());
            assert!(!shown.contains("S3cretPw"), "{query}: {shown}");
            assert!(shown.contains("without a value"), "{query}: {shown}");
        }
        let shown = message(
            Params::from_query("colour=red")
                .finish("redis", &[])
                .unwrap_err(),
        );
        assert!(shown.contains("\"colour\""), "{shown}");
        let shown = message(
            Params::from_query("colour=")
                .finish("redis", &[])
                .unwrap_err(),
        );
        assert!(shown.contains("\"colour\""), "{shown}");
    }

    /// Numbers are plain digits: a sign is refused, wherever a number is read.
    #[test]
    fn numbers_with_a_sign_are_refused() {
        for value in ["+3", "-3", "3 4", "3_0", "0x3", ""] {
            assert_eq!(parse_count(value), None, "{value:?}");
            assert_eq!(parse_number::<u32>(value), None, "{value:?}");
        }
        // In a query, '+' is a space: `+3` reads " 3", which no number, duration or
        // boolean has around it.
        for (query, name) in [
            ("pool_size=+3", "pool_size"),
            ("pool_size=%2B3", "pool_size"),
            ("db=+3", "db"),
            ("db=3%20", "db"),
            ("retry=+0", "retry"),
            ("timeout=+1s", "timeout"),
            ("timeout=%2B0.5", "timeout"),
            ("trace=+", "trace"),
        ] {
            let mut params = Params::from_query(query);
            let err = match name {
                "pool_size" => params.take_count(name).unwrap_err(),
                "timeout" => params.take_duration(name).unwrap_err(),
                "trace" => params.take_bool(name).unwrap_err(),
                _ => params.take_number::<u32>(name, "a number").unwrap_err(),
            };
            assert!(message(err).contains(name), "{query}");
        }
        for value in ["+0.5", "+1", "1e3", "inf", "NaN", "0x1", ".5", "1."] {
            assert_eq!(parse_duration(value), None, "{value:?}");
        }
        assert_eq!(parse_count(" 3 "), Some(3));
        assert_eq!(parse_duration("1.25"), Some(Duration::from_millis(1250)));
    }

    #[test]
    fn refused_parameters_are_named_with_the_reason() {
        let params = Params::from_query("db=2");
        let shown = message(
            params
                .refuse("memory", &["timeout", "db"], "which has no server")
                .unwrap_err(),
        );
        assert!(
            shown.contains("db") && shown.contains("memory://"),
            "{shown}"
        );
    }
}
