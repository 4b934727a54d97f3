//! A reporter that hands each event to several others, so a `JUnit` writer can sit beside the
//! screen.

use crate::ui::error::Error;
use crate::ui::events::{Event, Reporter};

/// Sends every event to each reporter, in order.
pub struct Multi(pub Vec<Box<dyn Reporter>>);

impl Reporter for Multi {
    fn event(&mut self, ev: &Event) {
        for reporter in &mut self.0 {
            reporter.event(ev);
        }
    }

    /// Finishes every reporter, even after one failed, and returns the first error.
    fn output(
        &mut self,
        ts: chrono::DateTime<chrono::Utc>,
        job: &str,
        step: &str,
        stream: crate::ui::Stream,
        line: &[u8],
    ) {
        for reporter in &mut self.0 {
            reporter.output(ts, job, step, stream, line);
        }
    }

    fn tick(&mut self) {
        for reporter in &mut self.0 {
            reporter.tick();
        }
    }

    fn finish(&mut self) -> Result<(), Error> {
        let mut first = Ok(());
        for reporter in &mut self.0 {
            let result = reporter.finish();
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::Multi;
    use crate::ui::events::Reporter;
    use crate::ui::fixtures::Shared;
    use crate::ui::fixtures::scripted_run;
    use crate::ui::json::JsonReporter;
    use crate::ui::junit::JUnitWriter;

    #[test]
    fn every_reporter_sees_every_event() {
        let (json, junit) = (Shared::default(), Shared::default());
        let mut multi = Multi(vec![
            Box::new(JsonReporter::new(Box::new(json.clone()))),
            Box::new(JUnitWriter::to_writer(Box::new(junit.clone()))),
        ]);
        let events = scripted_run();
        for ev in &events {
            multi.event(ev);
        }
        multi.finish().unwrap();
        assert_eq!(json.text().lines().count(), events.len());
        assert!(junit.text().contains("<testsuites"));
    }
}
