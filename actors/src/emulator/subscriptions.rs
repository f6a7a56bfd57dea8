//! [`Subscriptions`]: a daemon's NATS subscriptions merged into one stream.
//!
//! A daemon holds a handful of subscriptions (one per collective × agent, plus its node
//! subject). `futures::stream::select_all` would put each behind a task of its own with an
//! `Arc` waker; with tens of thousands of daemons in a process that bookkeeping costs more
//! than the subscriptions themselves, so this polls them in turn with the caller's waker.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::{Message, Subscriber};
use futures::Stream;

/// Several subscriptions polled in turn, starting after the one that last yielded.
pub(super) struct Subscriptions {
    subscribers: Vec<Subscriber>,
    next: usize,
}

impl Subscriptions {
    /// Merges `subscribers`.
    pub(super) fn new(subscribers: Vec<Subscriber>) -> Self {
        Self {
            subscribers,
            next: 0,
        }
    }
}

impl Stream for Subscriptions {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = &mut *self;
        let mut i = 0;
        while i < this.subscribers.len() {
            let index = (this.next + i) % this.subscribers.len();
            match Pin::new(&mut this.subscribers[index]).poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    this.next = (index + 1) % this.subscribers.len();
                    return Poll::Ready(Some(message));
                }
                Poll::Ready(None) => {
                    // That subscription ended (connection closed): drop it, poll the rest.
                    this.subscribers.swap_remove(index);
                    this.next = 0;
                    i = 0;
                }
                Poll::Pending => i += 1,
            }
        }
        if this.subscribers.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
