//! The inject stage: each fault of the timeline is a guard; injecting returns it, and
//! healing consumes it (as turmoil's partition/repair pairs), so a fault in effect can
//! only end by being healed.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::events::DrillEvent;
use super::scenario::{FaultKind, FaultSpec};
use super::topology::Topology;
use super::DrillError;
#[cfg(unix)]
use crate::dynamodb::DedicatedDynamoDb;
use crate::faults::{AwsFaultProxy, DynamoDbFault, FaultProxy, ProcessFault, Toxic, ANY_OPERATION};

/// A fault in effect. [`FaultGuard::heal`] undoes it; a guard dropped unhealed undoes
/// its network and API faults on the spot (a killed process needs `heal`).
#[derive(Debug)]
#[must_use = "a fault stays in effect until its guard is healed"]
pub struct FaultGuard<'t> {
    action: String,
    undo: Option<Undo<'t>>,
}

#[derive(Debug)]
enum Undo<'t> {
    /// Toxics set on proxies: removed by their own names.
    Toxics(Vec<(&'t FaultProxy, Toxic)>),
    /// DynamoDB operations answered with errors.
    Api(&'t AwsFaultProxy, Vec<String>),
    /// A stopped or killed DynamoDB Local.
    #[cfg(unix)]
    Process(&'t DedicatedDynamoDb, ProcessFault),
}

impl FaultSpec {
    /// Injects this fault into `topology`; the guard heals it.
    ///
    /// # Errors
    /// [`DrillError::Inject`] when the region cannot take it (a remote region, a process
    /// fault without a dedicated DynamoDB Local).
    pub fn inject<'t>(&self, topology: &'t Topology) -> Result<FaultGuard<'t>, DrillError> {
        let fail = |reason: String| DrillError::Inject {
            action: "inject",
            kind: self.kind.name(),
            region: self.region.clone(),
            reason,
        };
        let node = topology.region(&self.region).ok_or_else(|| fail("unknown region".into()))?;
        let remote = || {
            fail("faults for remote regions are left to the AWS FIS experiment `--export-fis` writes".into())
        };
        let paths = |node: &'t super::RegionNode| -> Result<[&'t FaultProxy; 2], DrillError> {
            Ok([node.client_path().ok_or_else(remote)?, node.replication_path().ok_or_else(remote)?])
        };
        let p = self.rate.unwrap_or(1.0);
        let (action, undo) = match self.kind {
            FaultKind::RegionOutage => (
                "blackhole on the client and replication paths (pooled connections included)".into(),
                set_toxics(paths(node)?.to_vec(), Toxic::blackhole().probability(p)),
            ),
            FaultKind::Latency => {
                let (delay, jitter) = (self.latency.unwrap_or_default(), self.jitter.unwrap_or_default());
                let toxic = Toxic::latency(delay).jitter(jitter).probability(p);
                let action =
                    format!("+{} ms (jitter {} ms) on every response", delay.as_millis(), jitter.as_millis());
                (action, set_toxics(paths(node)?.to_vec(), toxic))
            }
            FaultKind::Throttling => {
                let api = node.api().ok_or_else(remote)?;
                let error = self.error.unwrap_or(DynamoDbFault::ProvisionedThroughputExceeded);
                let operations = self.operations();
                for op in &operations {
                    api.inject(op, error, p);
                }
                let action = format!(
                    "{:.0}% of {} answered {} {}",
                    p * 100.0,
                    operations.join(", "),
                    error.status(),
                    error.code()
                );
                (action, Undo::Api(api, operations))
            }
            FaultKind::Partition => {
                let peers = self.partition_peers(topology);
                let mut proxies = vec![node.replication_path().ok_or_else(remote)?];
                for peer in &peers {
                    let peer = topology.region(peer).ok_or_else(|| fail(format!("unknown peer {peer}")))?;
                    proxies.push(peer.replication_path().ok_or_else(remote)?);
                }
                let action = format!(
                    "replication between {} and {} blackholed; clients reach both",
                    self.region,
                    peers.join(", ")
                );
                (action, set_toxics(proxies, Toxic::blackhole()))
            }
            FaultKind::ProcessKill => self.inject_process(node).map_err(fail)?,
        };
        Ok(FaultGuard { action, undo: Some(undo) })
    }

    #[cfg(unix)]
    fn inject_process<'t>(&self, node: &'t super::RegionNode) -> Result<(String, Undo<'t>), String> {
        let action = self.action.unwrap_or(ProcessFault::Kill);
        let dedicated = node.dedicated().ok_or("the region has no dedicated dynamodb")?;
        action.inject(dedicated).map_err(|e| e.to_string())?;
        let text = match action {
            ProcessFault::Kill => "dynamodb local killed (SIGKILL)",
            ProcessFault::Pause => "dynamodb local paused (SIGSTOP)",
        };
        Ok((text.into(), Undo::Process(dedicated, action)))
    }

    #[cfg(not(unix))]
    fn inject_process<'t>(&self, _node: &'t super::RegionNode) -> Result<(String, Undo<'t>), String> {
        Err("process faults need a unix system".into())
    }

    fn operations(&self) -> Vec<String> {
        if self.operations.is_empty() {
            vec![ANY_OPERATION.to_owned()]
        } else {
            self.operations.clone()
        }
    }

    fn partition_peers(&self, topology: &Topology) -> Vec<String> {
        match &self.peer {
            Some(peer) => vec![peer.clone()],
            None => {
                topology.regions().iter().map(|r| r.name().to_owned()).filter(|r| *r != self.region).collect()
            }
        }
    }
}

fn set_toxics(proxies: Vec<&FaultProxy>, toxic: Toxic) -> Undo<'_> {
    for proxy in &proxies {
        proxy.set(toxic);
    }
    Undo::Toxics(proxies.into_iter().map(|p| (p, toxic)).collect())
}

impl FaultGuard<'_> {
    /// What was done, for the report.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Undoes the fault (a killed DynamoDB Local restarts on its port, with its data).
    ///
    /// # Errors
    /// When a process cannot be restarted or resumed.
    pub async fn heal(mut self) -> Result<(), String> {
        match self.undo.take() {
            #[cfg(unix)]
            Some(Undo::Process(node, action)) => action.heal(node).await.map_err(|e| e.to_string()),
            Some(undo) => {
                undo.undo_now();
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Undo<'_> {
    fn undo_now(self) {
        match self {
            Undo::Toxics(set) => {
                for (proxy, toxic) in set {
                    proxy.remove(&toxic.name());
                }
            }
            Undo::Api(api, operations) => {
                for op in operations {
                    api.remove(&op);
                }
            }
            #[cfg(unix)]
            Undo::Process(..) => tracing::warn!("a process fault was dropped unhealed: its node stays down"),
        }
    }
}

impl Drop for FaultGuard<'_> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo.undo_now();
        }
    }
}

/// A fault of the timeline as it happened.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) spec: FaultSpec,
    pub(crate) action: String,
    pub(crate) injected: Instant,
    pub(crate) healed: Option<Instant>,
    /// The region taking traffic when it was injected.
    pub(crate) active_at_injection: String,
}

/// Runs the fault timeline on the real clock from `start` until `end`: injects each fault
/// at its time, heals it at its `heal_at`, heals what is left at `end`, and sends a typed
/// event for each; `healed` is called with each fault healed. Every fault is healed when
/// this returns, also on error.
pub(crate) async fn run_timeline(
    topology: &Topology,
    faults: &[FaultSpec],
    start: Instant,
    end: Duration,
    active: impl Fn() -> String,
    healed: impl Fn(&FaultSpec),
    events: &mpsc::UnboundedSender<DrillEvent>,
) -> Result<Vec<Applied>, DrillError> {
    let mut steps: Vec<(Duration, usize, bool)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        steps.push((f.at, i, true));
        if let Some(heal) = f.heal_at.filter(|h| *h < end) {
            steps.push((heal, i, false));
        }
    }
    steps.sort_by_key(|(at, i, inject)| (*at, !*inject, *i));
    let mut guards: Vec<Option<FaultGuard<'_>>> = faults.iter().map(|_| None).collect();
    let mut applied: Vec<Option<Applied>> = vec![None; faults.len()];
    let mut failure = None;
    for (at, i, inject) in steps {
        tokio::time::sleep_until((start + at).into()).await;
        let spec = &faults[i];
        if inject {
            let active_at_injection = active();
            // Timed from before the injection: a kill is under way from its signal, while
            // `inject` waits for the process to be gone.
            let now = Instant::now();
            match spec.inject(topology) {
                Ok(guard) => {
                    applied[i] = Some(Applied {
                        spec: spec.clone(),
                        action: guard.action().to_owned(),
                        injected: now,
                        healed: None,
                        active_at_injection,
                    });
                    guards[i] = Some(guard);
                    let _ = events.send(DrillEvent::FaultInjected {
                        fault: i,
                        kind: spec.kind,
                        region: spec.region.clone(),
                        at: now,
                    });
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        } else if let Some(guard) = guards[i].take() {
            if let Err(err) = heal(guard, spec, i, &mut applied, events).await {
                failure = Some(err);
                break;
            }
            healed(spec);
        }
    }
    if failure.is_none() {
        tokio::time::sleep_until((start + end).into()).await;
    }
    // The end of the load: what is still in effect is healed before anything is checked.
    for (i, guard) in guards.iter_mut().enumerate() {
        if let Some(guard) = guard.take() {
            match heal(guard, &faults[i], i, &mut applied, events).await {
                Ok(()) => healed(&faults[i]),
                Err(err) => {
                    tracing::warn!("{err}");
                    failure.get_or_insert(err);
                }
            }
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(applied.into_iter().flatten().collect()),
    }
}

async fn heal(
    guard: FaultGuard<'_>,
    spec: &FaultSpec,
    i: usize,
    applied: &mut [Option<Applied>],
    events: &mpsc::UnboundedSender<DrillEvent>,
) -> Result<(), DrillError> {
    let result = guard.heal().await;
    let now = Instant::now();
    if let Some(a) = applied[i].as_mut() {
        a.healed = Some(now);
    }
    let _ = events.send(DrillEvent::FaultHealed {
        fault: i,
        kind: spec.kind,
        region: spec.region.clone(),
        at: now,
    });
    result.map_err(|reason| DrillError::Inject {
        action: "heal",
        kind: spec.kind.name(),
        region: spec.region.clone(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::topology::proxies_only;
    use crate::faults::ToxicKind;

    fn spec(kind: &str, region: &str, extra: &str) -> FaultSpec {
        toml::from_str(&format!("at = \"1s\"\nkind = \"{kind}\"\nregion = \"{region}\"\n{extra}")).unwrap()
    }

    #[tokio::test]
    async fn a_guard_sets_its_fault_and_healing_removes_exactly_it() {
        let topology = proxies_only(&["a", "b"], "http://127.0.0.1:9").await;
        let (a, b) = (topology.region("a").unwrap(), topology.region("b").unwrap());
        // A toxic someone else set must survive the heal.
        b.client_path().unwrap().set(Toxic::reset());

        let outage = spec("region_outage", "a", "").inject(&topology).unwrap();
        for path in [a.client_path().unwrap(), a.replication_path().unwrap()] {
            assert!(matches!(path.toxics()[..], [t] if matches!(t.kind, ToxicKind::Blackhole)));
        }
        assert!(outage.action().contains("blackhole"));
        outage.heal().await.unwrap();
        assert!(
            a.client_path().unwrap().toxics().is_empty() && a.replication_path().unwrap().toxics().is_empty()
        );

        let partition = spec("partition", "a", "").inject(&topology).unwrap();
        assert!(a.client_path().unwrap().toxics().is_empty(), "clients still reach a");
        assert_eq!(b.replication_path().unwrap().toxics().len(), 1);
        partition.heal().await.unwrap();
        assert!(b.replication_path().unwrap().toxics().is_empty());
        assert_eq!(b.client_path().unwrap().toxics().len(), 1, "the unrelated toxic stayed");

        let latency = spec("latency", "b", "latency = \"300ms\"").inject(&topology).unwrap();
        assert_eq!(b.replication_path().unwrap().toxics().len(), 1);
        drop(latency);
        assert!(b.replication_path().unwrap().toxics().is_empty(), "a dropped guard heals");
    }

    #[tokio::test]
    async fn process_faults_need_a_dedicated_node() {
        let topology = proxies_only(&["a", "b"], "http://127.0.0.1:9").await;
        let err = spec("process_kill", "a", "").inject(&topology).unwrap_err();
        assert!(err.to_string().contains("inject fault process_kill in a"), "{err}");
    }

    /// A fault is timed from before its injection: a kill is under way from its signal,
    /// and `inject` returns only once the JVM is gone. Timed after, detection would look
    /// faster than it was by the time the kill took.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kill_is_timed_from_before_the_process_went() {
        use std::net::{SocketAddr, TcpStream};

        use lift::store::{KeyAttribute, TableDef};

        use crate::drill::{DynamoDbSpec, RegionSpec};

        let regions =
            [RegionSpec { name: "a".into(), dynamodb: DynamoDbSpec::Dedicated, ..Default::default() }];
        let topology =
            Topology::start(&regions, TableDef::new("t", KeyAttribute::string("id"))).await.unwrap();
        let endpoint = topology.region("a").unwrap().direct_endpoint().unwrap();
        let address: SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
        assert!(TcpStream::connect(address).is_ok(), "the JVM answers before the kill");
        // When the JVM first refuses a connection; a kill that never took fails the test
        // rather than hanging it.
        let give_up = Instant::now() + Duration::from_secs(30);
        let refused = std::thread::spawn(move || loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(50)).is_err() {
                return Some(Instant::now());
            }
            if Instant::now() > give_up {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        });
        let (events, _received) = mpsc::unbounded_channel();
        let kill = FaultSpec { at: Duration::ZERO, ..spec("process_kill", "a", "") };
        let end = Duration::from_millis(1);
        let applied = run_timeline(&topology, &[kill], Instant::now(), end, || "a".into(), |_| (), &events)
            .await
            .unwrap();
        let refused = refused.join().unwrap().expect("the JVM still answers 30 s after its kill");
        assert!(
            applied[0].injected < refused,
            "timed {:?} after the JVM went",
            applied[0].injected - refused
        );
    }
}
