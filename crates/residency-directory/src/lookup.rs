//! [`Lookup`]: a directory's answer, complete at once when it comes from
//! memory.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::Answer;

/// A directory's answer to one lookup.
///
/// A source that answers from memory returns [`Lookup::ready`] (no
/// allocation; [`Lookup::now`] reads it without an executor); a source that
/// must ask elsewhere returns [`Lookup::pending`]. Awaiting either gives the
/// [`Answer`].
#[must_use = "a lookup answers nothing until it is awaited or read with `now`"]
pub struct Lookup<'a, T>(State<'a, T>);

enum State<'a, T> {
    Ready(Option<Answer<T>>),
    Pending(BoxFuture<'a, Answer<T>>),
}

impl<'a, T> Lookup<'a, T> {
    /// An answer already known.
    pub fn ready(answer: Answer<T>) -> Self {
        Lookup(State::Ready(Some(answer)))
    }

    /// An answer still to come.
    pub fn pending(fut: impl Future<Output = Answer<T>> + Send + 'a) -> Self {
        Lookup(State::Pending(Box::pin(fut)))
    }

    /// The answer, if it is already known (`None`: it must be awaited).
    pub fn now(self) -> Option<Answer<T>> {
        match self.0 {
            State::Ready(a) => a,
            State::Pending(_) => None,
        }
    }

    /// Whether the answer is already known.
    pub fn is_ready(&self) -> bool {
        matches!(self.0, State::Ready(_))
    }
}

impl<T> Future for Lookup<'_, T> {
    type Output = Answer<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<T>> {
        let this = self.get_mut();
        match &mut this.0 {
            State::Ready(a) => Poll::Ready(a.take().expect("a Lookup polled after it answered")),
            State::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

impl<T> Unpin for Lookup<'_, T> {}
