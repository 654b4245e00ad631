//! Boxed event handlers, and running them so that a panic is a failure, not a crash.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::error::HandlerPanic;
use crate::BoxError;

/// What an event handler returns: `Ok(())`, or an error that marks the event failed.
pub type HandlerResult = Result<(), BoxError>;

/// A registered handler of events of type `T`.
pub(crate) type Handler<T> = Arc<dyn Fn(T) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// Boxes an async function or closure into a [`Handler`].
pub(crate) fn boxed<T, F, Fut>(handler: F) -> Handler<T>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |input| handler(input).boxed())
}

/// Runs a handler; a panic, while building the future or while polling it, becomes a
/// [`HandlerPanic`] error.
pub(crate) async fn run<T>(handler: &Handler<T>, input: T) -> HandlerResult {
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(input))) {
        Ok(future) => future,
        Err(_) => return Err(Box::new(HandlerPanic)),
    };
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(Box::new(HandlerPanic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_become_errors() {
        let sync_panic: Handler<u8> = Arc::new(|_| panic!("boom before the future"));
        let err = run(&sync_panic, 1).await.unwrap_err();
        assert!(err.is::<HandlerPanic>());

        let async_panic = boxed(|n: u8| async move {
            if n > 0 {
                panic!("boom inside the future");
            }
            Ok(())
        });
        assert!(run(&async_panic, 1).await.unwrap_err().is::<HandlerPanic>());
        assert!(run(&async_panic, 0).await.is_ok());
    }
}
