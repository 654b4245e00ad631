//! A local X-Ray daemon that only counts: it receives the segment documents a function
//! sends over UDP and keeps their trace ids.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// Receives X-Ray segment documents (`{"format": "json", "version": 1}` then the document,
/// one per datagram) on a UDP port of `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct XrayDaemon {
    addr: SocketAddr,
    trace_ids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl XrayDaemon {
    /// Binds a free UDP port.
    pub async fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let trace_ids = Arc::new(Mutex::new(Vec::new()));
        let sink = trace_ids.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                if let Some(id) = trace_id(&buf[..n]) {
                    sink.lock().expect("trace ids lock").push(id);
                }
            }
        });
        Ok(Self { addr, trace_ids, task })
    }

    /// The address for `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The trace id of each document received since the last call.
    pub fn drain(&self) -> Vec<String> {
        std::mem::take(&mut *self.trace_ids.lock().expect("trace ids lock"))
    }
}

impl Drop for XrayDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `trace_id` of a datagram's document, after the daemon header line.
fn trace_id(datagram: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (_, doc) = text.split_once('\n')?;
    let doc: serde_json::Value = serde_json::from_str(doc).ok()?;
    doc["trace_id"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn documents_after_the_header_give_their_trace_id() {
        let d = b"{\"format\": \"json\", \"version\": 1}\n{\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\",\"id\":\"x\"}";
        assert_eq!(super::trace_id(d).as_deref(), Some("1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(super::trace_id(b"{\"trace_id\":\"no header\"}"), None);
    }
}
