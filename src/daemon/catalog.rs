//! The daemon's workflows: every workflow file of its folder, reloaded when files change,
//! appear or vanish. An invalid file is reported with its errors and skipped; it never stops
//! the daemon or the other workflows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::spec::{Loaded, load};

/// One workflow file as last seen.
pub struct Entry {
    pub modified: Option<SystemTime>,
    pub len: u64,
    /// The loaded workflow, or the rendered errors of an invalid file.
    pub loaded: Result<Loaded, String>,
}

/// What a rescan changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<PathBuf>,
    pub changed: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

impl Changes {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The workflow files of a folder.
pub struct Catalog {
    dir: PathBuf,
    pub entries: BTreeMap<PathBuf, Entry>,
}

/// A `*.yaml` or `*.yml` file that is not hidden (editors and `rsync` write their temporary
/// copies as dot files).
fn is_workflow_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
}

impl Catalog {
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Catalog {
            dir,
            entries: BTreeMap::new(),
        }
    }

    /// Looks at the folder again and reloads what changed.
    pub fn rescan(&mut self) -> Changes {
        let mut changes = Changes::default();
        let mut present = Vec::new();
        if let Ok(read) = std::fs::read_dir(&self.dir) {
            for entry in read.flatten() {
                let path = entry.path();
                if is_workflow_file(&path) {
                    present.push(path);
                }
            }
        }
        present.sort();
        for path in &present {
            let meta = std::fs::metadata(path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            match self.entries.get(path) {
                Some(entry) if entry.modified == modified && entry.len == len => continue,
                Some(_) => changes.changed.push(path.clone()),
                None => changes.added.push(path.clone()),
            }
            let loaded = load(path).map_err(|e| e.render());
            self.entries.insert(
                path.clone(),
                Entry {
                    modified,
                    len,
                    loaded,
                },
            );
        }
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.entries.remove(&path);
            changes.removed.push(path);
        }
        changes
    }

    /// The valid workflows, by name (the first file wins when two share a name).
    #[must_use]
    pub fn workflows(&self) -> BTreeMap<String, &Loaded> {
        let mut out = BTreeMap::new();
        for entry in self.entries.values() {
            if let Ok(loaded) = &entry.loaded {
                out.entry(loaded.name.clone()).or_insert(loaded);
            }
        }
        out
    }
}

impl Catalog {
    /// Workflow names that more than one valid file defines, with their files in order.
    #[must_use]
    pub fn duplicates(&self) -> Vec<(String, Vec<PathBuf>)> {
        let mut files: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
        for (path, entry) in &self.entries {
            if let Ok(loaded) = &entry.loaded {
                files.entry(&loaded.name).or_default().push(path.clone());
            }
        }
        files
            .into_iter()
            .filter(|(_, paths)| paths.len() > 1)
            .map(|(name, paths)| (name.to_owned(), paths))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_appear_change_and_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::new(dir.path().to_owned());
        assert!(catalog.rescan().is_empty());
        let a = dir.path().join("a.yaml");
        std::fs::write(&a, "jobs:\n  x:\n    steps: [{ run: 'true' }]\n").unwrap();
        std::fs::write(dir.path().join("bad.yml"), "jobs: {}\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.path().join(".draft.yaml"), "ignored").unwrap();
        let changes = catalog.rescan();
        assert_eq!(changes.added.len(), 2);
        assert_eq!(catalog.workflows().keys().collect::<Vec<_>>(), ["a"]);
        std::fs::write(
            &a,
            "jobs:\n  x:\n    steps: [{ run: 'true' }]\n  y:\n    steps: [{ run: 'true' }]\n",
        )
        .unwrap();
        assert_eq!(catalog.rescan().changed, std::slice::from_ref(&a));
        std::fs::remove_file(&a).unwrap();
        assert_eq!(catalog.rescan().removed, [a]);
        assert!(catalog.workflows().is_empty());
    }

    #[test]
    fn two_files_naming_one_workflow_are_reported_and_the_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::new(dir.path().to_owned());
        let job = "jobs:\n  x:\n    steps: [{ run: 'true' }]\n";
        std::fs::write(dir.path().join("a.yaml"), format!("name: same\n{job}")).unwrap();
        std::fs::write(dir.path().join("b.yml"), format!("name: same\n{job}")).unwrap();
        catalog.rescan();
        let duplicates = catalog.duplicates();
        assert_eq!(duplicates.len(), 1);
        assert_eq!(duplicates[0].0, "same");
        assert_eq!(duplicates[0].1.len(), 2);
        assert!(catalog.workflows()["same"].file.ends_with("a.yaml"));
    }
}
