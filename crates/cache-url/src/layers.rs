//! The layers a URL asks for (`retry`, `deadline`, `trace`, `metrics`), taken out of its
//! query before the backend reads the rest, and stacked around the backend.

use std::{sync::Arc, time::Duration};

use cache_api::{Cache, CacheError, CacheStack};
use cache_layers::{MetricsLayer, RetryLayer, TimeoutLayer, TracingLayer};

/// The layer settings of [`Options`](crate::Options), read from a URL or set in code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LayerParams {
    pub(crate) retry: Option<usize>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) trace: Option<bool>,
    pub(crate) metrics: Option<bool>,
}

/// The most retries a URL or [`Options`](crate::Options) may ask for: with the retry
/// layer's longest pause of 200 ms, a call on a server that is down already takes some 20
/// seconds to give up; a count beyond is a typo, not a policy.
pub(crate) const MAX_RETRIES: usize = 100;

impl LayerParams {
    /// What code and URL ask for together, checked before anything is dialled.
    pub(crate) fn merged(code: Self, url: Self) -> Result<Self, CacheError> {
        let params = code.or(url);
        if let Some(retries) = params.retry.filter(|retries| *retries > MAX_RETRIES) {
            return Err(CacheError::config(format!(
                "retry={retries} asks for more than {MAX_RETRIES} retries: a call on a server \
                 that is down would take minutes to fail; bound the time of all tries with \
                 deadline= instead"
            )));
        }
        if params.deadline.is_some_and(|deadline| deadline.is_zero()) {
            return Err(CacheError::config(
                "a deadline of zero fails every call: give one longer than zero, or none",
            ));
        }
        Ok(params)
    }

    /// Where `self` says nothing, what `url` says.
    fn or(self, url: Self) -> Self {
        Self {
            retry: self.retry.or(url.retry),
            deadline: self.deadline.or(url.deadline),
            trace: self.trace.or(url.trace),
            metrics: self.metrics.or(url.metrics),
        }
    }
}

/// The URL parameters that ask for layers (`retry`, `deadline`, `trace`, `metrics`),
/// which [`connect`](crate::connect) takes out of the URL before the backend reads it.
/// A tool that hands such a URL to a backend's own builder takes them out first
/// ([`cache_url_core::split_off_params`]).
pub const LAYER_PARAMS: &[&str] = &["retry", "deadline", "trace", "metrics"];

/// Splits the layer parameters off `url`: the URL the backend reads (without them) and
/// what they ask for. Other parameters stay as written, in their order.
pub(crate) fn split(url: &str) -> Result<(String, LayerParams), CacheError> {
    let (rest, mut taken) = cache_url_core::split_off_params(url, LAYER_PARAMS);
    let params = LayerParams {
        retry: taken.take_number("retry", "a number of retries")?,
        deadline: taken.take_duration("deadline")?,
        trace: taken.take_bool("trace")?,
        metrics: taken.take_bool("metrics")?,
    };
    Ok((rest, params))
}

/// A backend's refusal of an unknown URL parameter lists the parameters it knows;
/// through [`connect`](crate::connect) the layers' are known too, and named with them, so
/// that a misspelt `retry` is not told that no such parameter exists. Public for tools
/// that read a URL's backend part themselves (after taking out [`LAYER_PARAMS`]) and
/// report its errors as `connect` would.
///
/// ```
/// let err = cache_api::CacheError::config(
///     "unknown redis:// url parameter \"foo\" (known: prefix, db)",
/// );
/// assert!(cache_url::name_layer_params(err)
///     .to_string()
///     .ends_with("(known: prefix, db; through cache_url::connect also the layers' retry, deadline, trace, metrics)"));
/// ```
pub fn name_layer_params(error: CacheError) -> CacheError {
    match error {
        CacheError::Config { message }
            if message.contains("url parameter")
                && message.ends_with(')')
                && message.contains("(known: ") =>
        {
            let (head, _) = message.split_at(message.len() - 1);
            CacheError::config(format!(
                "{head}; through cache_url::connect also the layers' {})",
                LAYER_PARAMS.join(", ")
            ))
        }
        other => other,
    }
}

/// Wraps `backend` in the layers asked for, innermost first: retry, then the deadline
/// over all tries, then tracing, then metrics (which see the call as the caller does).
pub(crate) fn stack(backend: Arc<dyn Cache>, params: LayerParams) -> Arc<dyn Cache> {
    CacheStack::new(backend)
        .layer(
            params
                .retry
                .filter(|retries| *retries > 0)
                .map(|retries| RetryLayer::new().max_retries(retries)),
        )
        .layer(params.deadline.map(TimeoutLayer::new))
        .layer(params.trace.unwrap_or(false).then(TracingLayer::new))
        .layer(params.metrics.unwrap_or(false).then(MetricsLayer::new))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_tck::config_message;

    /// A backend's list of the parameters it knows gets the layers' added; any other
    /// error is left as it is.
    #[test]
    fn a_refused_parameter_is_told_of_the_layers_parameters_too() {
        let named = name_layer_params(CacheError::config(
            "unknown redis:// url parameter \"retyr\" (known: prefix, timeout)",
        ));
        assert_eq!(
            named.to_string(),
            "invalid configuration: unknown redis:// url parameter \"retyr\" (known: prefix, \
             timeout; through cache_url::connect also the layers' retry, deadline, trace, metrics)"
        );
        let other = name_layer_params(CacheError::config("memory:// takes no path"));
        assert_eq!(
            other.to_string(),
            "invalid configuration: memory:// takes no path"
        );
    }

    #[test]
    fn layer_parameters_are_taken_out_and_the_rest_kept_in_order() {
        let (rest, params) = split(
            "redis://:pw@h/2?prefix=a%3A&retry=3&timeout=1s&deadline=500ms&trace=true&metrics",
        )
        .unwrap();
        assert_eq!(rest, "redis://:pw@h/2?prefix=a%3A&timeout=1s");
        assert_eq!(
            params,
            LayerParams {
                retry: Some(3),
                deadline: Some(Duration::from_millis(500)),
                trace: Some(true),
                metrics: Some(true),
            }
        );
        let (rest, params) = split("memory://?retry=0").unwrap();
        assert_eq!(rest, "memory://");
        assert_eq!(params.retry, Some(0));
        assert_eq!(split("memory://").unwrap().0, "memory://");
    }

    #[test]
    fn malformed_layer_parameters_name_themselves() {
        for (url, named) in [
            ("memory://?retry=-1", "retry"),
            ("memory://?retry=lots", "retry"),
            ("memory://?deadline=0", "deadline"),
            ("memory://?deadline=soon", "deadline"),
            ("memory://?trace=yes", "trace"),
            ("memory://?metrics=2", "metrics"),
        ] {
            match split(url) {
                Err(CacheError::Config { message }) => {
                    assert!(message.contains(named), "{url}: {message}");
                }
                other => panic!("{url}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn code_overrides_the_url() {
        let code = LayerParams {
            retry: Some(1),
            ..LayerParams::default()
        };
        let url = LayerParams {
            retry: Some(5),
            trace: Some(true),
            ..LayerParams::default()
        };
        let merged = code.or(url);
        assert_eq!(merged.retry, Some(1));
        assert_eq!(merged.trace, Some(true));
    }

    #[test]
    fn retries_beyond_the_most_are_refused_from_the_url_and_from_code() {
        let (_, url) = split(&format!("memory://?retry={}", MAX_RETRIES + 1)).unwrap();
        let message = config_message(LayerParams::merged(LayerParams::default(), url));
        assert!(message.contains("retry=101"), "{message}");
        assert!(message.contains("deadline="), "{message}");
        let code = LayerParams {
            retry: Some(usize::MAX),
            ..LayerParams::default()
        };
        config_message(LayerParams::merged(code, LayerParams::default()));
        // Code that asks for fewer wins over a URL that asks for too many.
        let code = LayerParams {
            retry: Some(3),
            ..LayerParams::default()
        };
        assert_eq!(LayerParams::merged(code, url).unwrap().retry, Some(3));
        let (_, url) = split(&format!("memory://?retry={MAX_RETRIES}")).unwrap();
        assert_eq!(
            LayerParams::merged(LayerParams::default(), url)
                .unwrap()
                .retry,
            Some(MAX_RETRIES)
        );
    }

    #[test]
    fn a_zero_deadline_from_code_is_refused() {
        let code = LayerParams {
            deadline: Some(Duration::ZERO),
            ..LayerParams::default()
        };
        let message = config_message(LayerParams::merged(code, LayerParams::default()));
        assert!(message.contains("deadline"), "{message}");
        let code = LayerParams {
            deadline: Some(Duration::from_nanos(1)),
            ..LayerParams::default()
        };
        assert!(LayerParams::merged(code, LayerParams::default()).is_ok());
    }
}
