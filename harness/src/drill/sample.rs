//! The sample stage: a [`Sample`] every 100 ms, published on a watch channel that the
//! progress bar (and anyone else) observes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lift::disaster::RegionRouter;
use tokio::sync::watch;

use super::lag::LagState;
use super::metrics::{Recorder, Sample};
use super::SAMPLE_INTERVAL;

/// Samples until `stop`, publishing each sample; returns them all, the last (partial)
/// window included.
pub(crate) async fn sample(
    recorder: Arc<Recorder>,
    router: RegionRouter,
    lag: Arc<Mutex<LagState>>,
    publish: watch::Sender<Option<Sample>>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let take = || {
        let now = Instant::now();
        let current_lag = lag.lock().expect("lag lock").current(now);
        recorder.sample(now, router.active().name().to_owned(), current_lag)
    };
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval_at((recorder.start() + SAMPLE_INTERVAL).into(), SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticks.tick() => {}
        }
        let sample = take();
        publish.send_replace(Some(sample.clone()));
        samples.push(sample);
    }
    samples.push(take());
    samples
}

/// A progress bar of `total_ms` that follows the published samples until the sampler
/// is gone.
pub(crate) fn progress(
    name: &str,
    total_ms: u64,
    quiet: bool,
    mut samples: watch::Receiver<Option<Sample>>,
) -> tokio::task::JoinHandle<()> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr_with_hz(10))
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed:>4} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("drill {name}"));
    tokio::spawn(async move {
        while samples.changed().await.is_ok() {
            let Some(s) = samples.borrow_and_update().clone() else { continue };
            bar.set_position(s.t_ms as u64);
            bar.set_message(format!(
                "{:>5.1}% ok  p50 {:>5} ms  p99 {:>5} ms  {:>4} in flight  active {}",
                s.success_rate * 100.0,
                s.p50_ms.map_or("-".into(), |v| format!("{v:.0}")),
                s.p99_ms.map_or("-".into(), |v| format!("{v:.0}")),
                s.in_flight,
                s.active_region
            ));
        }
        bar.finish_and_clear();
    })
}
