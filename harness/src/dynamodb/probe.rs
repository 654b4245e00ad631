//! Whether DynamoDB (Local) answers HTTP on an address.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Sends `GET /` and checks that the answer is DynamoDB's: an HTTP response that carries an
/// `x-amzn-RequestId` header (DynamoDB Local answers 400 `MissingAuthenticationToken`).
pub(crate) fn answers(host: &str, port: u16, timeout: Duration) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    for addr in addrs {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
            continue;
        };
        if stream.set_read_timeout(Some(timeout)).is_err() || stream.set_write_timeout(Some(timeout)).is_err()
        {
            continue;
        }
        let request = format!("GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            continue;
        }
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0; 1024];
        // The headers are all we need; stop at the blank line or after 16 KiB.
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if head.starts_with("http/1.") && head.contains("\r\nx-amzn-requestid:") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with a canned response; returns the port.
    fn serve_once(response: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        port
    }

    #[test]
    fn dynamodb_answers_are_recognised() {
        let port = serve_once("HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: 1\r\nContent-Length: 0\r\n\r\n");
        assert!(answers("127.0.0.1", port, Duration::from_secs(2)));
    }

    #[test]
    fn other_http_servers_are_not_dynamodb() {
        let port = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!answers("127.0.0.1", port, Duration::from_secs(2)));
    }

    #[test]
    fn closed_ports_do_not_answer() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(!answers("127.0.0.1", port, Duration::from_millis(200)));
    }
}
