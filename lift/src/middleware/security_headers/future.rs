//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::layer::{Headers, NO_STORE};

pin_project! {
    /// The response future of [`SecurityHeaders`](super::SecurityHeaders).
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        headers: Arc<Headers>,
        no_store: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, headers: Arc<Headers>, no_store: bool) -> Self {
        Self { future, headers, no_store }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("no_store", &self.no_store).finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = futures_util::ready!(this.future.poll(cx))?;
        let headers = response.headers_mut();
        for (name, value) in &this.headers.always {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &this.headers.if_absent {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if *this.no_store {
            headers.insert(NO_STORE.0, NO_STORE.1);
        }
        Poll::Ready(Ok(response))
    }
}
