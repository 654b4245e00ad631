//! A TCP proxy with toxics, controllable from code while connections are open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::toxic::{Direction, Toxic, ToxicKind};
use super::FaultError;

/// How long the proxy waits for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read at once.
const CHUNK: usize = 16 * 1024;

/// A toxic as set, with an id (for the per-connection probability roll) and when it was set.
#[derive(Debug, Clone)]
struct Active {
    id: u64,
    toxic: Toxic,
    since: Instant,
}

type Toxics = Arc<Vec<Active>>;

/// Counters of a [`FaultProxy`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes passed client to upstream.
    pub bytes_upstream: u64,
    /// Bytes passed upstream to client.
    pub bytes_downstream: u64,
    /// Connections reset by a toxic.
    pub resets: u64,
    /// Connections closed by a timeout toxic.
    pub timeouts: u64,
    /// Connections closed because the upstream refused or did not answer.
    pub upstream_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    bytes_upstream: AtomicU64,
    bytes_downstream: AtomicU64,
    resets: AtomicU64,
    timeouts: AtomicU64,
    upstream_failures: AtomicU64,
}

/// A TCP proxy on `127.0.0.1` and a free port that forwards to an upstream and applies
/// [`Toxic`]s: latency with jitter, blackhole, reset, bandwidth limit and timeout, each per
/// direction and with a probability.
///
/// Toxics change at any time with [`FaultProxy::set`], [`FaultProxy::remove`] and
/// [`FaultProxy::clear`], and act on open connections too: SDK clients pool connections, so
/// a blackhole that spared them would not cut a region off. The proxy stops, and closes its
/// connections, when dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), lift_harness::faults::FaultError> {
/// use std::time::Duration;
/// use lift_harness::faults::{FaultProxy, Toxic};
///
/// let proxy = FaultProxy::start("127.0.0.1:8000").await?;
/// let endpoint = proxy.endpoint(); // point a DynamoDB client here
/// proxy.set(Toxic::latency(Duration::from_millis(300)).jitter(Duration::from_millis(50)));
/// proxy.set(Toxic::blackhole()); // the region is gone, pooled connections too
/// proxy.clear(); // and back
/// # drop(endpoint); Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    toxics: watch::Sender<Toxics>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, given as `host:port` or as a URL such as
    /// `http://127.0.0.1:8000`.
    pub async fn start(upstream: &str) -> Result<Self, FaultError> {
        let upstream = authority(upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(FaultError::Bind)?;
        let addr = listener.local_addr().map_err(FaultError::Bind)?;
        let (toxics, rx) = watch::channel(Toxics::default());
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(listener, upstream.clone(), rx, counters.clone()));
        tracing::debug!(%addr, %upstream, "fault proxy started");
        Ok(Self { addr, upstream, toxics, next_id: AtomicU64::new(1), counters, accept })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for SDK clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream, `host:port`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Sets a toxic, replacing the one with the same [`Toxic::name`] (kind and direction).
    /// It acts on open connections at once.
    pub fn set(&self, toxic: Toxic) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = toxic.name();
        self.toxics.send_modify(|toxics| {
            let mut list: Vec<Active> = toxics.iter().filter(|a| a.toxic.name() != name).cloned().collect();
            list.push(Active { id, toxic, since: Instant::now() });
            *toxics = Arc::new(list);
        });
        tracing::debug!(proxy = %self.addr, toxic = %name, "toxic set");
    }

    /// Removes the toxic with this [`Toxic::name`]; returns whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut removed = false;
        self.toxics.send_modify(|toxics| {
            let list: Vec<Active> = toxics.iter().filter(|a| a.toxic.name() != name).cloned().collect();
            removed = list.len() != toxics.len();
            *toxics = Arc::new(list);
        });
        removed
    }

    /// Removes every toxic: held bytes flow again.
    pub fn clear(&self) {
        self.toxics.send_replace(Toxics::default());
        tracing::debug!(proxy = %self.addr, "toxics cleared");
    }

    /// The toxics in effect, in the order they were set.
    pub fn toxics(&self) -> Vec<Toxic> {
        self.toxics.borrow().iter().map(|a| a.toxic).collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
            bytes_upstream: c.bytes_upstream.load(Ordering::Relaxed),
            bytes_downstream: c.bytes_downstream.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            upstream_failures: c.upstream_failures.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Dropping `toxics` (the sender) ends every connection task.
        self.accept.abort();
    }
}

/// `host:port` of an address or URL.
fn authority(upstream: &str) -> Result<String, FaultError> {
    let rest = upstream.split_once("://").map_or(upstream, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.parse::<u16>().is_ok());
    if authority.is_empty() || !has_port {
        return Err(FaultError::Upstream(upstream.to_owned()));
    }
    Ok(authority.to_owned())
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    toxics: watch::Receiver<Toxics>,
    counters: Arc<Counters>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("fault proxy accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let (upstream, toxics, counters) = (upstream.clone(), toxics.clone(), counters.clone());
        tokio::spawn(async move {
            connection(client, &upstream, toxics, &counters).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// How a pump, or a connection, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The reader reached its end; the writer was shut down.
    Eof,
    /// A reset toxic: close with RST.
    Reset,
    /// A timeout toxic, or the proxy stopped: close.
    Close,
    /// An I/O error.
    Error,
}

/// One connection's view of the toxics: when it opened and its probability rolls.
#[derive(Debug)]
struct Conn {
    opened: Instant,
    rolls: Mutex<HashMap<u64, bool>>,
}

impl Conn {
    fn new() -> Self {
        Self { opened: Instant::now(), rolls: Mutex::new(HashMap::new()) }
    }

    /// Whether `active` applies to this connection on `flow`.
    fn applies(&self, active: &Active, flow: Direction) -> bool {
        if !active.toxic.direction.covers(flow) {
            return false;
        }
        let p = active.toxic.probability;
        if p >= 1.0 {
            return true;
        }
        if p <= 0.0 {
            return false;
        }
        // Both pumps of a connection share the roll, so a toxic applies to the whole of it.
        let mut rolls = self.rolls.lock().expect("rolls lock");
        *rolls.entry(active.id).or_insert_with(|| rand::thread_rng().gen_bool(p))
    }

    fn applying<'a>(
        &'a self,
        toxics: &'a [Active],
        flow: Direction,
    ) -> impl Iterator<Item = &'a Active> + 'a {
        toxics.iter().filter(move |a| self.applies(a, flow))
    }

    /// What the toxics say about data on `flow` now: end the connection, hold (until a
    /// deadline, if any), or pass.
    fn gate(&self, toxics: &[Active], flow: Direction) -> Gate {
        let mut gate = Gate::Pass;
        for active in self.applying(toxics, flow) {
            match active.toxic.kind {
                ToxicKind::Reset => return Gate::End(End::Reset),
                ToxicKind::Timeout { after } => {
                    let deadline = active.since.max(self.opened) + after;
                    if Instant::now() >= deadline {
                        return Gate::End(End::Close);
                    }
                    gate = match gate {
                        Gate::Hold(Some(d)) => Gate::Hold(Some(d.min(deadline))),
                        _ => Gate::Hold(Some(deadline)),
                    };
                }
                ToxicKind::Blackhole => {
                    if gate == Gate::Pass {
                        gate = Gate::Hold(None);
                    }
                }
                ToxicKind::Latency { .. } | ToxicKind::Bandwidth { .. } => {}
            }
        }
        gate
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Pass,
    Hold(Option<Instant>),
    End(End),
}

async fn connection(
    mut client: TcpStream,
    upstream: &str,
    mut toxics: watch::Receiver<Toxics>,
    counters: &Counters,
) {
    let conn = Conn::new();
    let _ = client.set_nodelay(true);
    let current = toxics.borrow_and_update().clone();
    let reset_now = |current: &[Active]| {
        [Direction::Upstream, Direction::Downstream]
            .into_iter()
            .any(|flow| conn.applying(current, flow).any(|a| a.toxic.kind == ToxicKind::Reset))
    };
    if reset_now(&current) {
        counters.resets.fetch_add(1, Ordering::Relaxed);
        reset(client);
        return;
    }
    let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(server)) => server,
        Ok(Err(err)) => {
            // A dead upstream looks to the client like a refused connection: an RST.
            tracing::debug!(%upstream, "fault proxy cannot reach upstream: {err}");
            counters.upstream_failures.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return;
        }
        Err(_) => {
            counters.upstream_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let up = pump(
            &mut client_read,
            &mut server_write,
            Direction::Upstream,
            toxics.clone(),
            &conn,
            &counters.bytes_upstream,
        );
        let down = pump(
            &mut server_read,
            &mut client_write,
            Direction::Downstream,
            toxics.clone(),
            &conn,
            &counters.bytes_downstream,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                end = &mut up, if !up_done => { up_done = true; end }
                end = &mut down, if !down_done => { down_done = true; end }
            };
            if end != End::Eof {
                break end;
            }
            if up_done && down_done {
                break End::Eof;
            }
        }
    };
    match end {
        End::Reset => {
            counters.resets.fetch_add(1, Ordering::Relaxed);
            reset(client);
            reset(server);
        }
        End::Close => {
            if toxics.has_changed().is_ok() {
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
        End::Eof | End::Error => {}
    }
}

/// Closes with an RST instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Copies `reader` to `writer` through the toxics on `flow`, until one side ends or a toxic
/// ends the connection.
async fn pump(
    reader: &mut ReadHalf<'_>,
    writer: &mut WriteHalf<'_>,
    flow: Direction,
    mut toxics: watch::Receiver<Toxics>,
    conn: &Conn,
    bytes: &AtomicU64,
) -> End {
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Wait for data, but wake for toxic changes: a reset or a timeout must end an idle,
        // pooled connection too.
        let n = loop {
            let current = toxics.borrow_and_update().clone();
            let deadline = match conn.gate(&current, flow) {
                Gate::End(end) => return end,
                Gate::Hold(deadline) => deadline,
                Gate::Pass => None,
            };
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(n) => break n,
                    Err(_) => return End::Error,
                },
                changed = toxics.changed() => if changed.is_err() { return End::Close },
                () = sleep_until(deadline) => {}
            }
        };
        if n == 0 {
            let _ = writer.shutdown().await;
            return End::Eof;
        }
        let current = toxics.borrow_and_update().clone();
        let delay: Duration = conn
            .applying(&current, flow)
            .filter_map(|a| match a.toxic.kind {
                ToxicKind::Latency { delay, jitter } => Some(delay + random_upto(jitter)),
                _ => None,
            })
            .sum();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Held bytes wait here until the blackhole or timeout goes (or the timeout fires).
        let rate = loop {
            let current = toxics.borrow_and_update().clone();
            match conn.gate(&current, flow) {
                Gate::End(end) => return end,
                Gate::Hold(deadline) => {
                    tokio::select! {
                        changed = toxics.changed() => if changed.is_err() { return End::Close },
                        () = sleep_until(deadline) => {}
                    }
                }
                Gate::Pass => {
                    break conn
                        .applying(&current, flow)
                        .filter_map(|a| match a.toxic.kind {
                            ToxicKind::Bandwidth { bytes_per_sec } => Some(bytes_per_sec),
                            _ => None,
                        })
                        .min();
                }
            }
        };
        let written = match rate {
            None => writer.write_all(&buf[..n]).await,
            Some(rate) => write_paced(writer, &buf[..n], rate).await,
        };
        if written.is_err() {
            return End::Error;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Writes `data` at `rate` bytes per second, in slices of a twentieth of a second.
async fn write_paced(writer: &mut WriteHalf<'_>, data: &[u8], rate: u64) -> std::io::Result<()> {
    let slice = (rate / 20).clamp(1, CHUNK as u64) as usize;
    for part in data.chunks(slice) {
        let began = Instant::now();
        writer.write_all(part).await?;
        let due = Duration::from_secs_f64(part.len() as f64 / rate as f64);
        tokio::time::sleep_until(began + due).await;
    }
    Ok(())
}

fn random_upto(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::thread_rng().gen_range(0..=max.as_nanos().min(u64::MAX as u128) as u64))
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_addresses_or_urls() {
        assert_eq!(authority("127.0.0.1:8000").unwrap(), "127.0.0.1:8000");
        assert_eq!(authority("http://127.0.0.1:8000/").unwrap(), "127.0.0.1:8000");
        assert_eq!(authority("http://localhost:9/x?y").unwrap(), "localhost:9");
        assert!(authority("http://127.0.0.1").is_err());
        assert!(authority("").is_err());
    }

    fn active(id: u64, toxic: Toxic) -> Active {
        Active { id, toxic, since: Instant::now() }
    }

    #[test]
    fn gates_follow_the_toxics() {
        let conn = Conn::new();
        assert_eq!(conn.gate(&[], Direction::Upstream), Gate::Pass);
        let hole = [active(1, Toxic::blackhole().direction(Direction::Upstream))];
        assert_eq!(conn.gate(&hole, Direction::Upstream), Gate::Hold(None));
        assert_eq!(conn.gate(&hole, Direction::Downstream), Gate::Pass);
        let reset = [active(2, Toxic::reset()), active(3, Toxic::blackhole())];
        assert_eq!(conn.gate(&reset, Direction::Downstream), Gate::End(End::Reset));
        let never = [active(4, Toxic::reset().probability(0.0))];
        assert_eq!(conn.gate(&never, Direction::Downstream), Gate::Pass);
        let expired = [active(5, Toxic::timeout(Duration::ZERO))];
        assert_eq!(conn.gate(&expired, Direction::Upstream), Gate::End(End::Close));
        let later = [active(6, Toxic::timeout(Duration::from_secs(60)))];
        assert!(matches!(conn.gate(&later, Direction::Upstream), Gate::Hold(Some(_))));
    }

    #[test]
    fn a_connection_rolls_once_per_toxic() {
        let conn = Conn::new();
        let half = active(7, Toxic::blackhole().probability(0.5));
        let first = conn.applies(&half, Direction::Upstream);
        for _ in 0..50 {
            assert_eq!(conn.applies(&half, Direction::Upstream), first);
            assert_eq!(conn.applies(&half, Direction::Downstream), first);
        }
    }
}
