//! The endpoints as Lift routes.

use http::Method;

use super::endpoint::{answer, response, Endpoint};
use super::HealthChecks;
use crate::app::RouteGroup;
use crate::body::{Request, Response};

impl HealthChecks {
    /// The three endpoints as Lift routes under `base` (e.g. `/health`), for apps that
    /// prefer routes to [`HealthLayer`](super::HealthLayer).
    ///
    /// Routes sit behind the App's layers: put a load shedder's health classification and
    /// any authentication in front of them with that in mind.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::middleware::health::HealthChecks;
    /// let app = lift::App::new().group(HealthChecks::builder().build().routes("/health"));
    /// ```
    pub fn routes(&self, base: &str) -> RouteGroup {
        let group = RouteGroup::new(base);
        [("/", Endpoint::Full), ("/live", Endpoint::Live), ("/ready", Endpoint::Ready)].into_iter().fold(
            group,
            |group, (path, endpoint)| {
                let checks = self.clone();
                group.get(path, move |req: Request| {
                    let checks = checks.clone();
                    async move {
                        let (status, body) = answer(&checks, endpoint).await;
                        response::<crate::Body>(status, body, req.method() == Method::HEAD) as Response
                    }
                })
            },
        )
    }
}
