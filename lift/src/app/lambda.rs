//! Running the app on AWS Lambda.

use super::App;
use crate::event::Dispatcher;
use crate::BoxError;

impl App {
    /// Runs the app on the Lambda runtime: HTTP events (API Gateway REST and HTTP APIs,
    /// Function URLs, ALB) go to the routes, other events to the [`EventRouter`](crate::event::EventRouter).
    pub async fn run_lambda(mut self) -> Result<(), BoxError> {
        let events = self.take_events();
        Dispatcher::new(Some(self.into_service()), events).run().await
    }
}
