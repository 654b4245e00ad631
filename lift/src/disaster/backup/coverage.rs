//! Whether the stream archive holds every change over a span of time: its runs' chunks
//! numbered without gaps, each taking up every shard where the chunk before left it, and
//! the runs' covered spans joining from the backup's start to the moment.

use std::collections::{BTreeMap, HashMap};

use super::archive::ChunkIndex;

/// Checks that the chunks hold every change from `from_ms` to `to_ms` (to the newest
/// moment any chunk covers when `None`), and returns until when they do; otherwise what is
/// missing.
pub(crate) fn check(
    chunks: &[(String, ChunkIndex)],
    from_ms: u64,
    to_ms: Option<u64>,
) -> Result<u64, String> {
    let mut runs: BTreeMap<&str, Vec<(&str, &ChunkIndex)>> = BTreeMap::new();
    let mut unrecorded = 0;
    for (name, index) in chunks {
        match &index.run {
            Some(run) => runs.entry(run.as_str()).or_default().push((name.as_str(), index)),
            None => unrecorded += 1,
        }
    }
    // Per run: the span it covers without a break, and where and why it breaks, if it does.
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut breaks: Vec<(u64, u64, String)> = Vec::new();
    let mut newest = 0u64;
    for (run, mut chunks) in runs {
        chunks.sort_by_key(|(_, c)| c.number);
        let started = chunks.iter().map(|(_, c)| c.run_started_ms).min().unwrap_or_default();
        let mut covered = started;
        let mut positions: HashMap<&str, &str> = HashMap::new();
        let mut broken: Option<String> = None;
        let mut expected = 0u64;
        for (name, chunk) in &chunks {
            newest = newest.max(chunk.covered_to_ms);
            if broken.is_some() {
                continue;
            }
            if chunk.number != expected {
                broken = Some(format!(
                    "chunk {expected} of archive run {run} is missing (the run holds every change only \
                     until {covered} ms; its next chunk is {name})"
                ));
                continue;
            }
            for (shard, span) in &chunk.shards {
                let before = positions.get(shard.as_str()).copied();
                if span.after.as_deref() != before {
                    broken = Some(format!(
                        "{name} takes up shard {shard} after sequence number {}, but the run's earlier \
                         chunks leave it at {}: records of the shard are missing",
                        span.after.as_deref().unwrap_or("(its start)"),
                        before.unwrap_or("(its start)")
                    ));
                    break;
                }
            }
            if broken.is_some() {
                continue;
            }
            for (shard, span) in &chunk.shards {
                positions.insert(shard, &span.last);
            }
            covered = covered.max(chunk.covered_to_ms);
            expected += 1;
        }
        spans.push((started, covered));
        if let Some(reason) = broken {
            breaks.push((started, covered, reason));
        }
    }
    let to = to_ms.unwrap_or(newest).max(from_ms);
    let mut at = from_ms;
    loop {
        let reach = spans.iter().filter(|(s, _)| *s <= at).map(|(_, e)| *e).max();
        match reach {
            Some(end) if end >= to => return Ok(end),
            Some(end) if end > at => at = end,
            _ => return Err(explain(at, from_ms, to, &spans, &breaks, unrecorded)),
        }
    }
}

/// Why nothing covers the moment `at`.
fn explain(
    at: u64,
    from: u64,
    to: u64,
    spans: &[(u64, u64)],
    breaks: &[(u64, u64, String)],
    unrecorded: usize,
) -> String {
    // A run that began by then and broke off before it: the nearest such break.
    let broke =
        breaks.iter().filter(|(start, end, _)| *start <= at && *end <= at).max_by_key(|(_, end, _)| *end);
    if let Some((_, _, reason)) = broke {
        return reason.clone();
    }
    if spans.is_empty() {
        return if unrecorded > 0 {
            format!(
                "its {unrecorded} chunks were written before archive runs were recorded, so they cannot \
                 show that no change is missing"
            )
        } else {
            "there is no stream archive".to_owned()
        };
    }
    let next = spans.iter().map(|(s, _)| *s).filter(|s| *s > at).min();
    match next {
        Some(start) if at == from && spans.iter().all(|(s, _)| *s > at) => {
            format!("the archive starts at {start} ms, after the backup started: changes in between are not archived")
        }
        Some(start) if start < to => format!("no archive run covers {at} ms to {start} ms"),
        _ => format!("the archive holds every change only until {at} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::archive::ShardSpan;
    use super::*;

    fn chunk(
        run: &str,
        number: u64,
        started: u64,
        covered: u64,
        shards: &[(&str, Option<&str>, &str)],
    ) -> (String, ChunkIndex) {
        let index = ChunkIndex {
            records: 0,
            sha256: String::new(),
            first_ms: 0,
            last_ms: 0,
            run: Some(run.to_owned()),
            number,
            run_started_ms: started,
            covered_to_ms: covered,
            shards: shards
                .iter()
                .map(|(s, after, last)| {
                    ((*s).to_owned(), ShardSpan { after: after.map(str::to_owned), last: (*last).to_owned() })
                })
                .collect(),
            table: Some("orders".to_owned()),
            signature: None,
        };
        (format!("stream/chunk-{started:013}-{run}-{number:06}"), index)
    }

    fn run_a() -> Vec<(String, ChunkIndex)> {
        vec![
            chunk("a", 0, 100, 200, &[("s1", None, "10")]),
            chunk("a", 1, 100, 300, &[("s1", Some("10"), "20"), ("s2", None, "5")]),
            chunk("a", 2, 100, 400, &[]),
            chunk("a", 3, 100, 500, &[("s2", Some("5"), "7")]),
        ]
    }

    #[test]
    fn a_run_without_gaps_covers_from_its_start_to_its_last_chunk() {
        assert_eq!(check(&run_a(), 150, Some(450)), Ok(500));
        assert_eq!(check(&run_a(), 100, None), Ok(500));
    }

    #[test]
    fn a_missing_chunk_is_named() {
        let mut chunks = run_a();
        chunks.remove(1);
        let err = check(&chunks, 150, Some(450)).unwrap_err();
        assert!(err.contains("chunk 1 of archive run a is missing"), "{err}");
        // Before the gap, the run still covers; a backup after the gap's start is not.
        assert_eq!(check(&chunks, 150, Some(190)), Ok(200));
        assert!(check(&chunks, 250, Some(450)).unwrap_err().contains("chunk 1 of archive run a is missing"));
        // The latest moment is the newest chunk's: the gap is found too.
        assert!(check(&chunks, 150, None).unwrap_err().contains("chunk 1"));
    }

    #[test]
    fn a_shard_taken_up_elsewhere_than_it_was_left_is_refused() {
        let mut chunks = run_a();
        chunks[3] = chunk("a", 3, 100, 500, &[("s2", Some("6"), "7")]);
        let err = check(&chunks, 150, Some(450)).unwrap_err();
        assert!(err.contains("shard s2") && err.contains("records of the shard are missing"), "{err}");
    }

    #[test]
    fn an_archive_started_after_the_backup_or_ended_before_the_moment_is_refused() {
        let err = check(&run_a(), 50, Some(450)).unwrap_err();
        assert!(err.contains("starts at 100 ms, after the backup started"), "{err}");
        let err = check(&run_a(), 150, Some(600)).unwrap_err();
        assert!(err.contains("only until 500 ms"), "{err}");
    }

    #[test]
    fn runs_join_only_when_they_overlap() {
        let mut chunks = run_a();
        chunks.push(chunk("b", 0, 450, 900, &[]));
        assert_eq!(check(&chunks, 150, Some(800)), Ok(900));
        let mut chunks = run_a();
        chunks.push(chunk("b", 0, 600, 900, &[]));
        let err = check(&chunks, 150, Some(800)).unwrap_err();
        assert!(err.contains("no archive run covers 500 ms to 600 ms"), "{err}");
    }

    #[test]
    fn no_archive_or_one_without_runs_proves_nothing() {
        assert_eq!(check(&[], 100, Some(200)).unwrap_err(), "there is no stream archive");
        let (name, mut old) = chunk("a", 0, 0, 0, &[]);
        old.run = None;
        let err = check(&[(name, old)], 100, None).unwrap_err();
        assert!(err.contains("written before archive runs were recorded"), "{err}");
    }
}
