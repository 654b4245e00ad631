//! The layer and its builder.

use std::time::Duration;

use http::StatusCode;
use tower_layer::Layer;

use super::dice::Dice;
use super::faults::{Faults, Latency};
use super::{Chaos, ChaosSwitch, Denylist, InvalidConfig};

/// Applies [`Chaos`] to services; every service it makes shares one [`ChaosSwitch`].
///
/// # Examples
///
/// ```
/// use lift::middleware::chaos::ChaosLayer;
///
/// // Off unless LIFT_CHAOS_ENABLED=true and a fault is set.
/// let chaos = ChaosLayer::from_env().unwrap();
/// let app = lift::App::new().layer(chaos);
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct ChaosLayer {
    switch: ChaosSwitch,
}

impl ChaosLayer {
    /// A builder (faults switched on once any is set, unless [`enabled(false)`](ChaosBuilder::enabled)).
    pub fn builder() -> ChaosBuilder {
        ChaosBuilder::default()
    }

    /// The layer [`ChaosBuilder::from_env`] describes.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the variable that cannot work.
    pub fn from_env() -> Result<Self, InvalidConfig> {
        ChaosBuilder::from_env()?.build()
    }

    /// The run-time switch shared by the services this layer makes.
    pub fn switch(&self) -> ChaosSwitch {
        self.switch.clone()
    }

    /// An AWS SDK interceptor that fails calls to denylisted hosts before they are sent;
    /// add it to each client's config (`.interceptor(chaos.interceptor())`).
    #[cfg(feature = "dynamodb")]
    pub fn interceptor(&self) -> super::ChaosInterceptor {
        super::ChaosInterceptor::new(self.switch.clone())
    }
}

impl<S> Layer<S> for ChaosLayer {
    type Service = Chaos<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos::new(inner, self.switch.clone())
    }
}

/// Configures a [`ChaosLayer`]. Rates are shares of requests in [0, 1].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ChaosBuilder {
    enabled: Option<bool>,
    latency: Option<(Duration, Duration, f64)>,
    error: Option<(u16, f64)>,
    exception_rate: f64,
    denylist: Vec<String>,
    seed: Option<u64>,
    from_env: bool,
}

impl ChaosBuilder {
    /// A builder seeded from the environment (see [the module](super) for the variables);
    /// methods called afterwards win over it.
    ///
    /// # Errors
    /// [`InvalidConfig`] naming the variable that cannot work.
    pub fn from_env() -> Result<Self, InvalidConfig> {
        Self::from_env_vars(crate::config::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::middleware::chaos::ChaosBuilder;
    ///
    /// let env = |name: &str| match name {
    ///     "LIFT_CHAOS_ENABLED" => Some("true".to_owned()),
    ///     "LIFT_CHAOS_EROR_RATE" => Some("0.2".to_owned()), // misspelt
    ///     _ => None,
    /// };
    /// let err = ChaosBuilder::from_env_vars(env).unwrap().build().unwrap_err();
    /// assert!(err.reason().contains("no fault"), "{err}");
    /// ```
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidConfig> {
        let env = crate::config::Env::from_lookup(lookup);
        let rate = |name: &str| env.parse::<f64>("chaos", name, "a number between 0 and 1");
        let mut builder = Self { from_env: true, ..Self::default() };
        builder.enabled =
            Some(match env.get("LIFT_CHAOS_ENABLED").map(|v| v.to_ascii_lowercase()).as_deref() {
                None | Some("0" | "false") => false,
                Some("1" | "true") => true,
                Some(_) => {
                    return Err(InvalidConfig::new("chaos", "LIFT_CHAOS_ENABLED must be true or false"))
                }
            });
        if let Some(latency) = env.get("LIFT_CHAOS_LATENCY_MS") {
            let ms = |v: &str| {
                v.trim().parse::<u64>().map_err(|_| {
                    InvalidConfig::new(
                        "chaos",
                        "LIFT_CHAOS_LATENCY_MS must be milliseconds, or a range such as 100-400",
                    )
                })
            };
            let (min, max) = match latency.split_once('-') {
                Some((min, max)) => (ms(min)?, ms(max)?),
                None => (ms(&latency)?, ms(&latency)?),
            };
            let share = rate("LIFT_CHAOS_LATENCY_RATE")?.unwrap_or(1.0);
            builder.latency = Some((Duration::from_millis(min), Duration::from_millis(max), share));
        } else if env.get("LIFT_CHAOS_LATENCY_RATE").is_some() {
            return Err(InvalidConfig::new("chaos", "LIFT_CHAOS_LATENCY_RATE needs LIFT_CHAOS_LATENCY_MS"));
        }
        let status = env.parse::<u16>("chaos", "LIFT_CHAOS_ERROR_STATUS", "a status between 400 and 599")?;
        match (rate("LIFT_CHAOS_ERROR_RATE")?, status) {
            (Some(share), status) => builder.error = Some((status.unwrap_or(500), share)),
            (None, Some(_)) => {
                return Err(InvalidConfig::new(
                    "chaos",
                    "LIFT_CHAOS_ERROR_STATUS needs LIFT_CHAOS_ERROR_RATE",
                ))
            }
            (None, None) => {}
        }
        builder.exception_rate = rate("LIFT_CHAOS_EXCEPTION_RATE")?.unwrap_or(0.0);
        if let Some(list) = env.get("LIFT_CHAOS_DENYLIST") {
            builder.denylist = Denylist::parse(&list)?.patterns().to_vec();
        }
        builder.seed = env.parse("chaos", "LIFT_CHAOS_SEED", "a whole number")?;
        Ok(builder)
    }

    /// Adds latency uniform in `min..=max` to a share `rate` of requests.
    pub fn latency(mut self, min: Duration, max: Duration, rate: f64) -> Self {
        self.latency = Some((min, max, rate));
        self
    }

    /// Answers a share `rate` of requests with `status` (400–599) without running the handler.
    pub fn error(mut self, status: StatusCode, rate: f64) -> Self {
        self.error = Some((status.as_u16(), rate));
        self
    }

    /// Fails a share `rate` of requests with [`InjectedFault`](super::InjectedFault) (a 500)
    /// without running the handler.
    pub fn exception(mut self, rate: f64) -> Self {
        self.exception_rate = rate;
        self
    }

    /// Denies downstream calls to hosts matching `pattern` (see [`Denylist`]).
    pub fn deny_host(mut self, pattern: impl Into<String>) -> Self {
        self.denylist.push(pattern.into());
        self
    }

    /// Switches the faults on or off at build (default: on when any is set; from the
    /// environment, `LIFT_CHAOS_ENABLED`).
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = Some(on);
        self
    }

    /// Seeds the draws, so a run repeats its sequence of faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the faults without building a layer (for [`ChaosSwitch::set`]).
    ///
    /// # Errors
    /// [`InvalidConfig`] for a rate outside [0, 1], a latency range upside down, an error
    /// status outside 400–599, a bad host pattern, or faults switched on from the
    /// environment with none set.
    pub fn faults(&self) -> Result<Faults, InvalidConfig> {
        let share = |rate: f64, name: &str| {
            if (0.0..=1.0).contains(&rate) {
                Ok(rate)
            } else {
                Err(InvalidConfig::new("chaos", format!("{name} must be a number between 0 and 1")))
            }
        };
        let latency = match self.latency {
            Some((min, max, _)) if min > max => {
                return Err(InvalidConfig::new(
                    "chaos",
                    "LIFT_CHAOS_LATENCY_MS: the range's low end is above its high end",
                ))
            }
            Some((min, max, rate)) => {
                Some(Latency { min, max, rate: share(rate, "LIFT_CHAOS_LATENCY_RATE")? })
            }
            None => None,
        };
        let error = match self.error {
            Some((status, rate)) => {
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .ok_or_else(|| {
                        InvalidConfig::new(
                            "chaos",
                            "LIFT_CHAOS_ERROR_STATUS must be a status between 400 and 599",
                        )
                    })?;
                Some((status, share(rate, "LIFT_CHAOS_ERROR_RATE")?))
            }
            None => None,
        };
        let exception_rate = share(self.exception_rate, "LIFT_CHAOS_EXCEPTION_RATE")?;
        let denylist = self.denylist.iter().try_fold(Denylist::default(), |deny, p| deny.with(p))?;
        let mut faults = Faults { enabled: false, latency, error, exception_rate, denylist };
        faults.enabled = self.enabled.unwrap_or_else(|| faults.configured());
        if faults.enabled && !faults.configured() && self.from_env {
            return Err(InvalidConfig::new(
                "chaos",
                "LIFT_CHAOS_ENABLED is true but no fault is set (LIFT_CHAOS_LATENCY_MS, LIFT_CHAOS_ERROR_RATE, LIFT_CHAOS_EXCEPTION_RATE or LIFT_CHAOS_DENYLIST)",
            ));
        }
        Ok(faults)
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// As [`faults`](Self::faults).
    pub fn build(self) -> Result<ChaosLayer, InvalidConfig> {
        let faults = self.faults()?;
        let switch = ChaosSwitch::new(faults, self.seed.unwrap_or_else(Dice::random_seed));
        if switch.is_on() {
            tracing::warn!(target: "lift::chaos", "chaos fault injection is on");
        }
        Ok(ChaosLayer { switch })
    }
}
