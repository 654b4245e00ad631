//! An in-memory [`MakeWriter`] that captures lines, for tests.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] that keeps everything written in memory; clones share the buffer.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use tracing_subscriber::fmt::MakeWriter;
/// let logs = lift::middleware::logging::MemoryWriter::new();
/// logs.make_writer().write_all(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
/// assert_eq!(logs.lines(), ["{\"a\":1}", "{\"b\":2}"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryWriter {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl MemoryWriter {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written, as text (invalid UTF-8 replaced).
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// The complete lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// Empties the buffer.
    pub fn clear(&self) {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// The writer [`MemoryWriter`] hands out for one line.
#[derive(Debug)]
pub struct MemoryWriterGuard<'a> {
    writer: &'a MemoryWriter,
}

impl io::Write for MemoryWriterGuard<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.writer.buf.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for MemoryWriter {
    type Writer = MemoryWriterGuard<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        MemoryWriterGuard { writer: self }
    }
}
