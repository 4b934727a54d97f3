//! The book (`docs/src/`, built by `scripts/book.sh`) and the README stay true:
//!
//! - the workflow reference, `docs/src/reference.md`, is what `coreflow schema --markdown`
//!   prints from the JSON Schema, byte for byte;
//! - every relative link in `docs/src/*.md` and `README.md` points at a file or folder that
//!   exists, and a `#anchor` into a Markdown file at one of its headings (slugs as mdBook and
//!   GitHub make them: lower case, spaces to `-`, other punctuation dropped);
//! - every chapter is listed in `docs/src/SUMMARY.md` (mdBook renders nothing else);
//! - every ```` ```yaml ```` block that is a whole workflow (a `jobs:` key at the top level)
//!   passes `coreflow validate --deny-warnings`. Fragments without a top-level `jobs:` (a
//!   step, a trigger) are skipped, whatever they show.
//!
//! Conventions for the book's YAML blocks:
//!
//! - A block that shows a warning on purpose (script injection, say) opens with
//!   ```` ```yaml warns ````: it must pass `coreflow validate` and fail
//!   `coreflow validate --deny-warnings`, so that it goes on showing the warning.
//! - A block whose first line is a comment naming a file (`# ingest.yaml`) is written under
//!   that name, beside the other blocks of its chapter, so that a workflow can call another
//!   (`workflow: ingest.yaml`). Other blocks are written as `block-N.yaml`.
//!
//! No network and no tool beyond `coreflow`: links to `http(s)://` and `mailto:` are not
//! followed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::engine_support::Workspace;
use crate::support::repo_root;

const REFERENCE: &str = "docs/src/reference.md";

#[test]
fn the_workflow_reference_matches_the_schema() {
    crate::support::assert_generated_file(REFERENCE, &["schema", "--markdown"]);
}

#[test]
fn every_relative_link_in_the_book_and_the_readme_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        for link in links(&text) {
            if is_external(&link) {
                continue;
            }
            checked += 1;
            if let Err(problem) = resolve(&page, &link) {
                broken.push(format!("{}: ({link}): {problem}", relative(&page)));
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} links found: is the link reader broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_chapter_is_in_the_summary() {
    let src = repo_root().join("docs/src");
    let summary = read(&src.join("SUMMARY.md"));
    let listed: BTreeSet<String> = links(&summary)
        .into_iter()
        .map(|link| link.split('#').next().unwrap_or_default().to_owned())
        .collect();
    let missing: Vec<String> = chapters()
        .iter()
        .map(|page| relative_to(page, &src))
        .filter(|name| name != "SUMMARY.md" && !listed.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/src/SUMMARY.md does not list {missing:?}: mdBook would not render them"
    );
}

#[test]
fn every_workflow_in_the_book_validates() {
    let mut validated = 0;
    let mut failures = Vec::new();
    for page in pages() {
        let blocks = yaml_blocks(&read(&page));
        if blocks.is_empty() {
            continue;
        }
        let ws = Workspace::new();
        let mut files = Vec::new();
        for (index, block) in blocks.iter().enumerate() {
            let name = block
                .file_name()
                .unwrap_or_else(|| format!("block-{}.yaml", index + 1));
            ws.file(&name, &block.text);
            files.push(name);
        }
        for (block, name) in blocks.iter().zip(&files) {
            if !block.is_workflow() {
                continue;
            }
            validated += 1;
            let place = format!("{}:{}", relative(&page), block.line);
            let strict = ws
                .coreflow()
                .args(["validate", "--deny-warnings", name])
                .run();
            if !block.warns && strict.code() != Some(0) {
                failures.push(format!(
                    "{place}: the workflow no longer passes `coreflow validate \
                     --deny-warnings` (mark the fence `yaml warns` if it shows a warning on \
                     purpose):\n{}\n{strict}",
                    block.text
                ));
            } else if block.warns {
                let lenient = ws.coreflow().args(["validate", name]).run();
                if strict.code() != Some(2) {
                    failures.push(format!(
                        "{place}: the block is marked `warns` but `validate --deny-warnings` \
                         did not refuse it:\n{strict}"
                    ));
                } else if lenient.code() != Some(0) {
                    failures.push(format!(
                        "{place}: the block no longer validates:\n{lenient}"
                    ));
                }
            }
        }
    }
    assert!(
        validated >= 5,
        "only {validated} workflows found in the book: is the block reader broken?"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The Markdown files checked: the book's chapters and the README.
fn pages() -> Vec<PathBuf> {
    let mut pages = chapters();
    pages.push(repo_root().join("README.md"));
    pages
}

/// `docs/src/*.md`, sorted.
fn chapters() -> Vec<PathBuf> {
    let src = repo_root().join("docs/src");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", src.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.sort();
    assert!(pages.len() > 10, "too few chapters in {}", src.display());
    pages
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn relative(path: &Path) -> String {
    relative_to(path, repo_root())
}

fn relative_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn is_external(link: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| link.starts_with(scheme))
}

/// Whether `link`, written in `page`, reaches a file or folder (and, with `#anchor` into a
/// Markdown file, one of its headings).
fn resolve(page: &Path, link: &str) -> Result<(), String> {
    let (path, anchor) = match link.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (link, None),
    };
    let target = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().expect("a page is in a folder").join(path)
    };
    if !target.exists() {
        return Err(format!("{} does not exist", target.display()));
    }
    if let Some(anchor) = anchor
        && target.extension().is_some_and(|ext| ext == "md")
        && !heading_anchors(&read(&target)).contains(anchor)
    {
        return Err(format!("no heading `#{anchor}` in {}", relative(&target)));
    }
    Ok(())
}

/// The lines of `text` outside fenced code blocks, with their numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(marker) => {
                if trimmed.starts_with(marker)
                    && trimmed.trim_start_matches(marker).trim().is_empty()
                {
                    fence = None;
                }
            }
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => lines.push((index + 1, line)),
        }
    }
    lines
}

/// `line` without its inline code spans (`` `[x](y)` `` is not a link).
fn without_code(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        let marker = "`".repeat(ticks);
        match after.find(&marker) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                // An unmatched run of backticks is text.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the inline links and images (`[text](target)`) and of the link reference
/// definitions (`[name]: target`) of `text`, outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (_, line) in prose_lines(text) {
        let line = without_code(line);
        if let Some((_, target)) = line
            .trim_start()
            .strip_prefix('[')
            .and_then(|definition| definition.split_once("]:"))
        {
            found.push(clean_target(target));
            continue;
        }
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            // Balanced parentheses, as CommonMark allows in a destination.
            let mut depth = 0;
            let end = after.char_indices().find_map(|(at, c)| match c {
                '(' => {
                    depth += 1;
                    None
                }
                ')' if depth == 0 => Some(at),
                ')' => {
                    depth -= 1;
                    None
                }
                _ => None,
            });
            let Some(end) = end else { break };
            found.push(clean_target(&after[..end]));
            rest = &after[end + 1..];
        }
    }
    found.retain(|link| !link.is_empty());
    found
}

/// A link destination without its title (`"…"`) and angle brackets.
fn clean_target(target: &str) -> String {
    let target = target.trim();
    let target = match target.strip_prefix('<') {
        Some(inner) => inner.split('>').next().unwrap_or_default(),
        None => target.split_whitespace().next().unwrap_or_default(),
    };
    target.to_owned()
}

/// The anchors of `text`'s headings, as mdBook makes them (a repeated heading gets `-1`,
/// `-2`, …).
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = heading_text(line) else {
            continue;
        };
        let slug = slug(&heading);
        let mut anchor = slug.clone();
        let mut repeat = 0;
        while anchors.contains(&anchor) {
            repeat += 1;
            anchor = format!("{slug}-{repeat}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// The text of an ATX heading (`## A `b` [c](d)` → `A b c`).
fn heading_text(line: &str) -> Option<String> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim().trim_end_matches('#').trim();
    // A link's text stays, its destination goes.
    let mut text = String::new();
    let mut remaining = rest;
    while let Some(start) = remaining.find("](") {
        text.push_str(&remaining[..start]);
        let after = &remaining[start + 2..];
        remaining = after.find(')').map_or("", |end| &after[end + 1..]);
    }
    text.push_str(remaining);
    Some(text.replace(['`', '[', '*'], ""))
}

/// mdBook's `normalize_id`: alphanumerics lower-cased, `-` and `_` kept, white space to `-`,
/// everything else dropped. GitHub's anchors agree for the headings the book uses.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// A ```` ```yaml ```` block of a page.
struct YamlBlock {
    /// The line of the opening fence.
    line: usize,
    text: String,
    /// The fence says `warns`: the block shows a warning on purpose.
    warns: bool,
}

impl YamlBlock {
    /// A whole workflow has `jobs:` at the top level; anything else is a fragment.
    fn is_workflow(&self) -> bool {
        self.text
            .lines()
            .any(|line| line.starts_with("jobs:") || line.starts_with("\"jobs\":"))
    }

    /// The file named by a first-line comment (`# ingest.yaml`).
    fn file_name(&self) -> Option<String> {
        let first = self.text.lines().next()?.trim();
        let name = first.strip_prefix('#')?.trim();
        let is_file = (name.ends_with(".yaml") || name.ends_with(".yml"))
            && !name.contains(char::is_whitespace)
            && !name.contains('/');
        is_file.then(|| name.to_owned())
    }
}

/// The ```` ```yaml ```` blocks of `text`, with the words after `yaml` in the fence (split
/// at spaces or commas: `yaml warns`, `yaml,warns`).
fn yaml_blocks(text: &str) -> Vec<YamlBlock> {
    let mut blocks = Vec::new();
    let mut current: Option<YamlBlock> = None;
    let mut in_other_fence = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(block) = &mut current {
            if trimmed == "```" {
                blocks.push(current.take().expect("a block is open"));
            } else {
                block.text.push_str(line);
                block.text.push('\n');
            }
            continue;
        }
        if in_other_fence {
            in_other_fence = trimmed != "```";
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        let words: Vec<&str> = info
            .split([' ', ','])
            .filter(|word| !word.is_empty())
            .collect();
        if words
            .first()
            .is_some_and(|lang| *lang == "yaml" || *lang == "yml")
        {
            current = Some(YamlBlock {
                line: index + 1,
                text: String::new(),
                warns: words.contains(&"warns"),
            });
        } else {
            in_other_fence = true;
        }
    }
    blocks
}

#[test]
fn the_readers_of_this_file_read_markdown_as_mdbook_does() {
    let text = "# Title\n\nSee [a](a.md#b-c) and `[not](x.md)` and ![i](img/i.png \"t\").\n\
                \n```sh\n[no](link.md)\n```\n\n[ref]: <other file.md>\n\n## B `c`?\n\n## B c\n";
    assert_eq!(
        links(text),
        ["a.md#b-c", "img/i.png", "other file.md"].map(String::from)
    );
    let anchors = heading_anchors(text);
    assert!(anchors.contains("title") && anchors.contains("b-c") && anchors.contains("b-c-1"));
    let blocks = yaml_blocks("```yaml warns\n# x.yaml\njobs: {}\n```\n```sh\n```yaml\n```\n");
    assert_eq!(blocks.len(), 1);
    assert!(blocks[0].warns && blocks[0].is_workflow());
    assert_eq!(blocks[0].file_name().as_deref(), Some("x.yaml"));
    assert_eq!(
        slug("Fan-out over a list: `for_each`"),
        "fan-out-over-a-list-for_each"
    );
}
