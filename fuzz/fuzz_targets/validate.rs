//! Loads and validates a workflow from arbitrary bytes, as `coreflow validate` does: YAML,
//! the schema check, templates, cron expressions, durations and time zones, then renders
//! the report. It must never panic, overflow the stack or take long (run with
//! `-timeout=1`), and a refused file must point at a real place in it.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match coreflow::spec::parse_bytes("fuzz.yaml", data.to_vec()) {
        Ok(loaded) => {
            let _ = loaded.render_warnings();
        }
        Err(err) => {
            assert!(!err.diagnostics.is_empty(), "refused without a diagnostic");
            for diagnostic in &err.diagnostics {
                assert!(
                    diagnostic.pos.line >= 1 && diagnostic.pos.col >= 1,
                    "{diagnostic:?}"
                );
            }
            let _ = err.render();
        }
    }
});
