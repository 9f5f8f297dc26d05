//! Behaviour around a cache: a [`Layer`] wraps one, a [`CacheStack`] stacks them.

use std::sync::Arc;

use crate::Cache;

/// Wraps a cache in behaviour of its own (retry, timeout, tracing, metrics...): the
/// result is a cache again, so layers stack and the TCK certifies any stack.
///
/// A layer reads what it needs from the cache it wraps ([`Cache::limits`],
/// [`Cache::describe`]) rather than knowing the backend.
///
/// ```
/// use std::sync::Arc;
/// use cache_api::{Cache, Layer};
///
/// /// A layer that changes nothing, for the shape.
/// struct Nothing;
///
/// impl Layer for Nothing {
///     fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
///         inner
///     }
/// }
/// ```
pub trait Layer {
    /// Returns `inner` wrapped in this layer.
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache>;
}

/// `None` is no layer at all: `stack.layer(wanted.then(|| TracingLayer::new()))`.
impl<L: Layer> Layer for Option<L> {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        match self {
            Some(layer) => layer.layer(inner),
            None => inner,
        }
    }
}

impl<L: Layer + ?Sized> Layer for &L {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        (**self).layer(inner)
    }
}

impl<L: Layer + ?Sized> Layer for Box<L> {
    fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
        (**self).layer(inner)
    }
}

/// Builds a cache out of a backend and layers around it, reading from the inside out:
/// each [`layer`](CacheStack::layer) wraps everything written above it, so the **last
/// layer is the outermost**, the first to see a call and the last to see its result.
///
/// ```
/// use std::sync::Arc;
/// use cache_api::{Cache, CacheStack, Layer};
///
/// struct Nothing;
/// impl Layer for Nothing {
///     fn layer(&self, inner: Arc<dyn Cache>) -> Arc<dyn Cache> {
///         inner
///     }
/// }
///
/// fn stack(backend: Arc<dyn Cache>) -> Arc<dyn Cache> {
///     CacheStack::new(backend)
///         .layer(Nothing) // innermost: sees every call the ones below pass on
///         .layer(None::<Nothing>) // left out
///         .layer(Nothing) // outermost: what the application calls
///         .build()
/// }
/// ```
#[must_use = "a stack does nothing until it is built"]
pub struct CacheStack {
    cache: Arc<dyn Cache>,
}

impl CacheStack {
    /// Starts a stack on `cache`, the backend at its core.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    /// Wraps everything so far in `layer`, which becomes the outermost.
    pub fn layer(self, layer: impl Layer) -> Self {
        Self {
            cache: layer.layer(self.cache),
        }
    }

    /// The cache, outermost layer first.
    #[must_use]
    pub fn build(self) -> Arc<dyn Cache> {
        self.cache
    }
}

impl std::fmt::Debug for CacheStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStack")
            .field("backend", &self.cache.describe().label)
            .finish_non_exhaustive()
    }
}
