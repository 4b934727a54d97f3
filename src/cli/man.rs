//! `coreflow man [DIR]`: one roff man page per command (`coreflow.1`, `coreflow-run.1`,
//! `coreflow-queue-add.1`, …), rendered by `clap_mangen` from the clap definitions that also
//! make `--help` and the shell completions, so the three cannot drift apart.
//!
//! Pages are written with the process umask, like every file a user asks for; `DIR` is
//! created when missing. Without `DIR` the top-level page goes to stdout
//! (`coreflow man | man -l -`).

use std::fs;

use clap::CommandFactory;

use crate::cli::args::{Cli, GlobalArgs, ManArgs};
use crate::error::Error;

/// The manual section of every page: user commands.
const SECTION: &str = "1";

pub(super) fn run(global: &GlobalArgs, args: &ManArgs) -> Result<(), Error> {
    let pages = pages();
    let Some(dir) = &args.dir else {
        let (_, top) = pages.first().expect("the top-level command has a page");
        let text = String::from_utf8_lossy(top);
        return super::output::print(&text);
    };
    fs::create_dir_all(dir).map_err(|err| super::output::write_error(dir, &err))?;
    let mut written = Vec::with_capacity(pages.len());
    for (name, roff) in &pages {
        let path = dir.join(name);
        fs::write(&path, roff).map_err(|err| super::output::write_error(&path, &err))?;
        written.push(path);
    }
    if global.json {
        let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        let value = serde_json::json!({ "pages": paths });
        return super::output::print(&super::output::json_text(&value));
    }
    if global.quiet {
        return Ok(());
    }
    let mut text = String::new();
    for path in &written {
        text.push_str(&path.display().to_string());
        text.push('\n');
    }
    super::output::print(&text)
}

/// Every page as (file name, roff), the top-level command's first, then its commands depth
/// first in the order `--help` lists them. Hidden commands and clap's `help` have none.
pub(super) fn pages() -> Vec<(String, Vec<u8>)> {
    // Building the top-level command gives every subcommand its display name,
    // `coreflow-queue-add`, which is the page's title and file name.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let source = format!("coreflow {}", env!("CARGO_PKG_VERSION"));
    let mut pages = Vec::new();
    collect(&command, &source, &mut pages);
    pages
}

fn collect(command: &clap::Command, source: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    let man = clap_mangen::Man::new(command.clone())
        .section(SECTION)
        .source(source)
        .manual("CoreFlow Manual");
    let mut roff = Vec::new();
    man.render(&mut roff)
        .expect("rendering into memory cannot fail");
    pages.push((man.get_filename(), roff));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect(sub, source, pages);
    }
}

#[cfg(test)]
mod tests {
    use super::pages;

    #[test]
    fn every_visible_command_has_a_page_named_after_its_path() {
        let names: Vec<String> = pages().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names.first().map(String::as_str), Some("coreflow.1"));
        for expected in [
            "coreflow-run.1",
            "coreflow-init.1",
            "coreflow-completions.1",
            "coreflow-man.1",
            "coreflow-queue-add.1",
            "coreflow-schedule-preview.1",
            "coreflow-env-copy.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.contains("sql-step")), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("-help.1")), "{names:?}");
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "one page per command");
    }

    #[test]
    fn a_page_has_its_title_source_and_options() {
        let pages = pages();
        let (_, run) = pages
            .iter()
            .find(|(name, _)| name == "coreflow-run.1")
            .expect("a page for run");
        let text = String::from_utf8_lossy(run);
        let title = format!(
            ".TH coreflow-run 1  \"coreflow {}\" \"CoreFlow Manual\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|line| line == title), "{text}");
        assert!(text.contains("\\-\\-workers"), "{text}");
    }
}
