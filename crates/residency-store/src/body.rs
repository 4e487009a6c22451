//! Streaming object bodies.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::error::{BoxError, StoreError};

/// The boxed stream of chunks inside a [`Body`].
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + Sync>>;

/// An object body: a stream of byte chunks with an optional known length.
///
/// Backends consume and produce bodies chunk by chunk; they never hold a
/// whole object in memory (except [`MemoryBackend`](crate::MemoryBackend),
/// which is for tests).
///
/// ```
/// # tokio_test_block_on(async {
/// use residency_store::Body;
/// let body = Body::from_bytes("hello".into());
/// assert_eq!(body.len_hint(), Some(5));
/// assert_eq!(body.collect().await.unwrap(), "hello");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct Body {
    inner: Inner,
    len: Option<u64>,
}

enum Inner {
    /// Fully in memory already (small bodies, tests); lets the S3 backend
    /// send a retryable body.
    Full(Option<Bytes>),
    Stream(BodyStream),
}

impl Body {
    /// A body holding `bytes`; its length is known.
    pub fn from_bytes(bytes: Bytes) -> Self {
        let len = Some(bytes.len() as u64);
        Self {
            inner: Inner::Full(Some(bytes)),
            len,
        }
    }

    /// A body read from `stream`. `len`, when known, is the exact number of
    /// bytes the stream yields; backends check it and fail with
    /// [`StoreError::IncompleteBody`] when the stream disagrees.
    pub fn from_stream<S>(stream: S, len: Option<u64>) -> Self
    where
        S: Stream<Item = Result<Bytes, BoxError>> + Send + Sync + 'static,
    {
        Self {
            inner: Inner::Stream(Box::pin(stream)),
            len,
        }
    }

    /// An empty body (length 0).
    pub fn empty() -> Self {
        Self::from_bytes(Bytes::new())
    }

    /// The exact length of the body when it is known.
    pub fn len_hint(&self) -> Option<u64> {
        self.len
    }

    /// The bytes, when the body is already fully in memory.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.inner {
            Inner::Full(b) => b.as_ref(),
            Inner::Stream(_) => None,
        }
    }

    /// The body as a boxed stream of chunks.
    pub fn into_stream(self) -> BodyStream {
        match self.inner {
            Inner::Stream(s) => s,
            Inner::Full(b) => Box::pin(futures::stream::iter(
                b.filter(|b| !b.is_empty()).map(Ok::<_, BoxError>),
            )),
        }
    }

    /// Reads the whole body into memory. Meant for tests and small bodies.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the stream fails (for a body read from
    /// a backend, the backend went away mid-stream).
    pub async fn collect(self) -> Result<Bytes, StoreError> {
        if let Inner::Full(Some(b)) = self.inner {
            return Ok(b);
        }
        let mut buf = BytesMut::new();
        let mut stream = self.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StoreError::Unavailable {
                message: "body stream failed".into(),
                source: Some(e),
            })?;
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(Ok)),
            Inner::Stream(s) => s.as_mut().poll_next(cx),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::from_bytes(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self::from_bytes(bytes.into())
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::from_bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Full(_) => "bytes",
            Inner::Stream(_) => "stream",
        };
        f.debug_struct("Body")
            .field("kind", &kind)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_body_collects() {
        let chunks = vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))];
        let body = Body::from_stream(futures::stream::iter(chunks), Some(4));
        assert_eq!(body.len_hint(), Some(4));
        assert!(body.as_bytes().is_none());
        assert_eq!(body.collect().await.unwrap(), "abcd");
        assert_eq!(Body::empty().collect().await.unwrap(), "");
        let mut s = Body::from_bytes(Bytes::from("x")).into_stream();
        assert_eq!(s.next().await.unwrap().unwrap(), "x");
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn stream_error_is_unavailable() {
        let chunks: Vec<Result<Bytes, BoxError>> = vec![Ok(Bytes::from("ab")), Err("cut".into())];
        let body = Body::from_stream(futures::stream::iter(chunks), None);
        assert!(body.collect().await.unwrap_err().is_unavailable());
    }
}
