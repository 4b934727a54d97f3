//! Semantic checks of a structurally valid workflow: names, needs, cycles, durations, cron,
//! time zones, templates, inputs, DataBlock names and parameter defaults; and warnings where
//! a value the author does not control is pasted into a script ([`injection`]).
//!
//! Positions come from the YAML tree by path, so the typed model stays free of spans.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::spec::MAX_NESTING;
use crate::spec::dag::find_cycles;
use crate::spec::diag::{Diagnostic, Pos, Suggester, list_names, shown};
use crate::spec::injection::{self, Language};
use crate::spec::matrix;
use crate::spec::model::{Axis, ForEach, Job, MAX_FOR_EACH_ITEMS, SqlStep, Step, Workflow};
use crate::spec::params::{BLOCK_NAME_RULE, check_value, is_valid_block_name};
use crate::spec::template;
use crate::spec::yaml::Node;

/// A path step for finding a node.
#[derive(Clone, Copy)]
enum At<'a> {
    Key(&'a str),
    /// The key node itself rather than its value.
    KeyOf(&'a str),
    Index(usize),
}

/// Maps with more entries than this are looked up through an index ([`Ctx::entry`]).
const INDEXED_MAP: usize = 16;

/// The key and value node of an entry of a map.
type Entry<'a> = (&'a Node, &'a Node);

/// What [`Ctx::entry`] keeps of one map it looked in.
#[derive(Default)]
struct MapMemo<'a> {
    /// Its entries by key, for a map with more than [`INDEXED_MAP`] of them.
    index: Option<HashMap<&'a str, Entry<'a>>>,
    /// The last key looked up, by address and length, and what it found: a job's paths all
    /// hold its name, which may be long, and comparing it again for each of thousands of
    /// problems would cost the name's length each time. Keys are borrowed for as long as
    /// the checks run, so an address names one string.
    last: Option<((*const u8, usize), Option<Entry<'a>>)>,
}

struct Ctx<'a> {
    wf: &'a Workflow,
    root: &'a Node,
    source: &'a str,
    out: &'a mut Vec<Diagnostic>,
    /// What was found in each map looked in, so that finding positions costs constant time
    /// however many jobs (10,000 must validate in well under a second) or keys with problems
    /// a map holds. Maps are known by address; the tree does not change while it is checked.
    maps: RefCell<HashMap<*const Node, MapMemo<'a>>>,
    /// "Did you mean" suggestions, under one budget for the file.
    suggester: Suggester,
}

impl<'a> Ctx<'a> {
    /// The key and value nodes under `key` in the map `node`.
    fn entry(&self, node: &'a Node, key: &'a str) -> Option<Entry<'a>> {
        let entries = node.as_map()?;
        let mut maps = self.maps.borrow_mut();
        let memo = maps.entry(std::ptr::from_ref(node)).or_default();
        let id = (key.as_ptr(), key.len());
        if let Some((last, found)) = memo.last
            && last == id
        {
            return found;
        }
        let found = if entries.len() <= INDEXED_MAP {
            node.entry(key)
        } else {
            let index = memo.index.get_or_insert_with(|| {
                let mut index = HashMap::with_capacity(entries.len());
                for (k, v) in entries {
                    // The first of equal keys, as a scan would find it.
                    index
                        .entry(k.as_text().unwrap_or_default())
                        .or_insert((k, v));
                }
                index
            });
            index.get(key).copied()
        };
        memo.last = Some((id, found));
        found
    }

    /// The node one `step` down from `node`.
    fn step(&self, node: &'a Node, step: At<'a>) -> Option<&'a Node> {
        match step {
            At::Key(key) => self.entry(node, key).map(|(_, v)| v),
            At::KeyOf(key) => self.entry(node, key).map(|(k, _)| k),
            At::Index(i) => node.as_seq().and_then(|items| items.get(i)),
        }
    }

    /// The node at `path`, if there is one.
    fn node(&self, path: &[At<'a>]) -> Option<&'a Node> {
        path.iter()
            .try_fold(self.root, |node, step| self.step(node, *step))
    }

    /// The position of the node at `path`, or of its closest existing ancestor.
    fn pos(&self, path: &[At<'a>]) -> Pos {
        let mut node = self.root;
        for step in path {
            match self.step(node, *step) {
                Some(next) => node = next,
                None => break,
            }
        }
        node.pos
    }

    fn error(&mut self, path: &[At<'a>], message: String) -> &mut Diagnostic {
        let pos = self.pos(path);
        self.out.push(Diagnostic::error(pos, message));
        self.out.last_mut().expect("just pushed")
    }

    /// Where the node at `path` (or its closest existing ancestor) starts, and the byte
    /// offset where its text ends.
    fn extent(&self, path: &[At<'a>]) -> (Pos, usize) {
        match self.node(path) {
            Some(node) => (node.pos, node.end),
            None => {
                let pos = self.pos(path);
                (pos, pos.offset)
            }
        }
    }

    /// Points `pos`, the start of a node's text ending at byte `end`, at the first
    /// occurrence of `needle` in that text, if there is one.
    fn refine(&self, pos: Pos, end: usize, needle: &str) -> Pos {
        self.find(pos, needle, end).unwrap_or(pos)
    }

    /// The position of the first `needle` at or after `from`, before byte `end`.
    fn find(&self, from: Pos, needle: &str, end: usize) -> Option<Pos> {
        let window = self.source.get(from.offset..end)?;
        let found = window.find(needle)?;
        Some(Pos {
            len: needle.chars().count(),
            ..self.advance(from, from.offset + found)
        })
    }

    /// The first place of each of `references` (dotted paths a template reads) in the text
    /// from `start` to byte `end`, found in one pass over it: a reference is written as a
    /// run of dotted names, or the start of one (`params.x` in `params.x.y`).
    fn locate<'r>(
        &self,
        start: Pos,
        end: usize,
        references: impl IntoIterator<Item = &'r str>,
    ) -> HashMap<&'r str, Pos> {
        let mut wanted: HashSet<&str> = references.into_iter().collect();
        let Some(text) = self.source.get(start.offset..end) else {
            return HashMap::new();
        };
        let bytes = text.as_bytes();
        let name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut found: Vec<(usize, &str)> = Vec::new();
        let mut i = 0;
        while i < bytes.len() && !wanted.is_empty() {
            let starts_run = (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_')
                && (i == 0 || !name(bytes[i - 1]) && bytes[i - 1] != b'.');
            if !starts_run {
                i += 1;
                continue;
            }
            let run = i;
            let mut prefixes = 0;
            loop {
                while i < bytes.len() && name(bytes[i]) {
                    i += 1;
                }
                // Each name of the run ends a prefix that may be a reference; a reference
                // has at most as many names as expressions nest.
                if prefixes <= MAX_NESTING
                    && let Some(reference) = wanted.take(&text[run..i])
                {
                    found.push((start.offset + run, reference));
                }
                prefixes += 1;
                if i + 1 < bytes.len() && bytes[i] == b'.' && name(bytes[i + 1]) {
                    i += 1;
                } else {
                    break;
                }
            }
        }
        found.sort_unstable();
        let mut at = start;
        found
            .into_iter()
            .map(|(offset, reference)| {
                at = self.advance(at, offset);
                let len = reference.chars().count();
                (reference, Pos { len, ..at })
            })
            .collect()
    }

    /// The position of byte `to`, counted on from `from`: only the text between them is read,
    /// so that positions deep in a large file cost no more than those near its start.
    fn advance(&self, from: Pos, to: usize) -> Pos {
        let between = self.source.get(from.offset..to).unwrap_or_default();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (line, col) = match between.rfind('\n') {
            Some(last) => (
                from.line
                    .saturating_add(count(between.matches('\n').count())),
                count(between[last + 1..].chars().count()).saturating_add(1),
            ),
            None => (
                from.line,
                from.col.saturating_add(count(between.chars().count())),
            ),
        };
        Pos {
            line,
            col,
            offset: to,
            len: 1,
        }
    }
}

/// Appends every semantic problem of `wf` to `out`.
pub fn validate(wf: &Workflow, root: &Node, source: &str, out: &mut Vec<Diagnostic>) {
    let mut ctx = Ctx {
        wf,
        root,
        source,
        out,
        maps: RefCell::default(),
        suggester: Suggester::default(),
    };
    check_params(&mut ctx);
    check_triggers(&mut ctx);
    check_workflow_level(&mut ctx);
    if wf.jobs.is_empty() {
        ctx.error(
            &[At::KeyOf("jobs")],
            "a workflow needs at least one job".to_owned(),
        );
    }
    for (name, job) in &wf.jobs {
        check_job(&mut ctx, name, job);
    }
    check_cycles(&mut ctx);
}

/// Whether `shell` names a shell CoreFlow can run a script with.
#[must_use]
pub fn is_valid_shell(shell: &str) -> bool {
    matches!(shell.trim(), "sh" | "bash" | "python3") || shell.contains("{0}")
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_job_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name.parse::<u64>().is_err()
}

fn check_params(ctx: &mut Ctx<'_>) {
    let wf = ctx.wf;
    for (name, param) in &wf.params {
        let at = [At::Key("params"), At::KeyOf(name)];
        if !is_identifier(name) {
            ctx.error(&at, format!("parameter name `{name}` must start with a letter and hold only letters, digits, `_` and `-`"));
        }
        if let Some(choices) = &param.choices {
            for (i, choice) in choices.iter().enumerate() {
                if let Err(err) = crate::spec::params::parse_value(param.kind, choice.as_str()) {
                    let path = [
                        At::Key("params"),
                        At::Key(name),
                        At::Key("choices"),
                        At::Index(i),
                    ];
                    ctx.error(
                        &path,
                        format!("choice `{choice}` of parameter `{name}` is not {err}"),
                    );
                }
            }
        }
        if let Some(default) = &param.default
            && let Err(err) = check_value(name, param, default.as_str())
        {
            let path = [At::Key("params"), At::Key(name), At::Key("default")];
            ctx.error(&path, format!("default value does not fit: {err}"));
        }
    }
}

fn check_triggers(ctx: &mut Ctx<'_>) {
    let wf = ctx.wf;
    for (i, trigger) in wf.triggers.iter().enumerate() {
        let at = |key: &'static str| [At::Key("triggers"), At::Index(i), At::Key(key)];
        let kinds = [
            ("schedule", trigger.schedule.is_some()),
            ("every", trigger.every.is_some()),
            ("at", trigger.at.is_some()),
            ("file", trigger.file.is_some()),
            ("datablock", trigger.datablock.is_some()),
            ("after", trigger.after.is_some()),
        ];
        let given: Vec<&str> = kinds
            .iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect();
        match given.as_slice() {
            [] => {
                ctx.error(
                    &[At::Key("triggers"), At::Index(i)],
                    format!("trigger {} names no kind", i + 1),
                )
                .label = Some(
                    "expected one of `schedule`, `every`, `at`, `file`, `datablock`, `after`"
                        .into(),
                );
            }
            [_] => {}
            [_, second, ..] => {
                ctx.error(
                    &at(second),
                    format!(
                        "trigger {} has several kinds ({}); give one per trigger",
                        i + 1,
                        list_names(given.iter().copied())
                    ),
                );
            }
        }
        if let Some(schedule) = &trigger.schedule
            && let Err(message) = crate::spec::cron::parse_schedule(schedule)
        {
            ctx.error(&at("schedule"), message.to_string());
        }
        if let Some(zone) = &trigger.timezone {
            if trigger.schedule.is_none() {
                ctx.error(
                    &at("timezone"),
                    "`timezone` applies to `schedule` triggers only".to_owned(),
                );
            } else if zone.parse::<chrono_tz::Tz>().is_err() {
                let help = ctx
                    .suggester
                    .suggest(zone, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()));
                ctx.error(&at("timezone"), format!("unknown time zone `{zone}`"))
                    .with_label_mut("expected an IANA name such as `Europe/Berlin` or `UTC`")
                    .help = help;
            }
        }
        if let Some(every) = &trigger.every
            && every.get().is_zero()
        {
            ctx.error(&at("every"), "`every` must be longer than zero".to_owned());
        }
        if let Some(instant) = &trigger.at
            && chrono::DateTime::parse_from_rfc3339(instant).is_err()
        {
            ctx.error(&at("at"), format!("`{instant}` is not an RFC 3339 instant"))
                .label = Some("expected e.g. `2026-12-24T18:00:00+01:00`".into());
        }
        if let Some(block) = &trigger.datablock
            && !is_valid_block_name(block)
        {
            ctx.error(&at("datablock"), invalid_block_name(block));
        }
        if let Some(file) = &trigger.file
            && file.path.trim().is_empty()
        {
            ctx.error(
                &at("file"),
                "a file trigger needs a non-empty `path`".to_owned(),
            );
        }
        for (name, value) in &trigger.params {
            let path = [
                At::Key("triggers"),
                At::Index(i),
                At::Key("params"),
                At::KeyOf(name),
            ];
            match wf.params.get(name) {
                None => {
                    let help = ctx
                        .suggester
                        .suggest(name, wf.params.keys().map(String::as_str));
                    ctx.error(
                        &path,
                        format!("unknown parameter `{name}` in trigger {}", i + 1),
                    )
                    .help = help;
                }
                Some(param) => {
                    if let Err(err) = check_value(name, param, value.as_str()) {
                        ctx.error(&path, err.to_string());
                    }
                }
            }
        }
    }
    if let Some(concurrency) = &wf.concurrency
        && concurrency.max_runs == Some(0)
    {
        ctx.error(
            &[At::Key("concurrency"), At::Key("max_runs")],
            "`max_runs` must be at least 1".to_owned(),
        );
    }
}

trait LabelMut {
    fn with_label_mut(&mut self, label: &str) -> &mut Self;
}

impl LabelMut for Diagnostic {
    fn with_label_mut(&mut self, label: &str) -> &mut Self {
        self.label = Some(label.to_owned());
        self
    }
}

/// What a template at some place may read.
#[derive(Clone, Copy)]
struct Scope<'a> {
    job: Option<(&'a str, &'a Job)>,
    /// The workflow's `outputs:`, which read `jobs.<name>.outputs.*` and `.result`.
    outputs: bool,
    /// Rendered when the run is created (a matrix axis): only `params` are known.
    creation: bool,
    /// In step `i` of the job, which reads `steps.<id>` of the steps before it.
    step: Option<usize>,
    /// An `env` value (set by [`check_template`] from the path): secrets belong there.
    env: bool,
}

fn check_workflow_level(ctx: &mut Ctx<'_>) {
    let wf = ctx.wf;
    for (i, notify) in wf.notify.iter().enumerate() {
        let kinds: Vec<&str> = [
            notify.webhook.as_ref().map(|_| "webhook"),
            notify.run.as_ref().map(|_| "run"),
            notify.email.as_ref().map(|_| "email"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let at = [At::Key("notify"), At::Index(i)];
        match kinds.as_slice() {
            [] => {
                ctx.error(
                    &at,
                    format!("notifier {} needs `webhook`, `run` or `email`", i + 1),
                );
            }
            [_] => {}
            [first, second, ..] => {
                ctx.error(
                    &[At::Key("notify"), At::Index(i), At::KeyOf(second)],
                    format!(
                        "notifier {} has both `{first}` and `{second}`; give one per notifier",
                        i + 1
                    ),
                );
            }
        }
        if notify.on.is_empty() {
            ctx.error(&[At::Key("notify"), At::Index(i), At::Key("on")], format!("notifier {} is sent on no result: give `success`, `failure`, `cancelled` or `any`", i + 1));
        }
        if let Some(webhook) = &notify.webhook
            && !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://"))
        {
            ctx.error(
                &[
                    At::Key("notify"),
                    At::Index(i),
                    At::Key("webhook"),
                    At::Key("url"),
                ],
                format!(
                    "webhook URL `{}` must start with http:// or https://",
                    shown(&webhook.url)
                ),
            );
        }
        if let Some(email) = &notify.email
            && email.to.is_empty()
        {
            ctx.error(
                &[
                    At::Key("notify"),
                    At::Index(i),
                    At::Key("email"),
                    At::Key("to"),
                ],
                format!("notifier {} sends e-mail to nobody", i + 1),
            );
        }
    }
    for name in wf.secrets.keys() {
        if !is_identifier(name) {
            ctx.error(
                &[At::Key("secrets"), At::KeyOf(name)],
                format!("secret name `{}` must start with a letter and hold only letters, digits, `_` and `-`", shown(name)),
            );
        }
    }
    for (key, value) in &wf.env {
        check_template(
            ctx,
            &[At::Key("env"), At::Key(key)],
            value.as_str(),
            Scope {
                job: None,
                outputs: false,
                creation: false,
                step: None,
                env: false,
            },
            false,
        );
    }
    for (key, value) in &wf.outputs {
        check_template(
            ctx,
            &[At::Key("outputs"), At::Key(key)],
            value.as_str(),
            Scope {
                job: None,
                outputs: true,
                creation: false,
                step: None,
                env: false,
            },
            false,
        );
    }
    if let Some(retry) = &wf.defaults.retry
        && retry.max_attempts == 0
    {
        ctx.error(
            &[
                At::Key("defaults"),
                At::Key("retry"),
                At::Key("max_attempts"),
            ],
            "`max_attempts` must be at least 1".to_owned(),
        );
    }
}

fn job_path<'a>(name: &'a str, rest: &[At<'a>]) -> Vec<At<'a>> {
    let mut path = vec![At::Key("jobs"), At::Key(name)];
    path.extend_from_slice(rest);
    path
}

fn step_path<'a>(name: &'a str, i: usize, rest: &[At<'a>]) -> Vec<At<'a>> {
    let mut path = job_path(name, &[At::Key("steps"), At::Index(i)]);
    path.extend_from_slice(rest);
    path
}

fn check_job<'a>(ctx: &mut Ctx<'a>, name: &'a str, job: &'a Job) {
    let wf = ctx.wf;
    // Messages quote the name cut short: it is repeated in each message about the job.
    let quoted = shown(name);
    if !is_job_name(name) {
        ctx.error(&[At::Key("jobs"), At::KeyOf(name)], format!("job name `{name}` may hold only letters, digits, `_`, `-` and `.`, and may not be a number"));
    }
    let mut seen = HashSet::new();
    let needs_is_list = ctx
        .node(&job_path(name, &[At::Key("needs")]))
        .is_some_and(|n| n.as_seq().is_some());
    for (i, need) in job.needs.iter().enumerate() {
        let mut path = job_path(name, &[At::Key("needs")]);
        if needs_is_list {
            path.push(At::Index(i));
        }
        if need == name {
            ctx.error(&path, format!("job `{quoted}` needs itself"));
        } else if !wf.jobs.contains_key(need) {
            let help = ctx
                .suggester
                .suggest(need, wf.jobs.keys().map(String::as_str));
            ctx.error(
                &path,
                format!("job `{quoted}` needs `{need}`, which is not a job of this workflow"),
            )
            .help = help;
        } else if !seen.insert(need.as_str()) {
            ctx.error(
                &path,
                format!("job `{quoted}` lists `{need}` twice in `needs`"),
            );
        }
    }
    if let Some(max) = job.max_parallel {
        if max == 0 {
            ctx.error(
                &job_path(name, &[At::Key("max_parallel")]),
                "`max_parallel` must be at least 1".to_owned(),
            );
        } else if job.matrix.is_empty() && job.for_each.is_none() {
            ctx.error(
                &job_path(name, &[At::KeyOf("max_parallel")]),
                format!("job `{quoted}` has `max_parallel` but no `matrix` or `for_each` to bound"),
            );
        }
    }
    match &job.for_each {
        Some(_) if !job.matrix.is_empty() => {
            ctx.error(
                &job_path(name, &[At::KeyOf("for_each")]),
                format!("job `{quoted}` has both `matrix` and `for_each`; use one"),
            );
        }
        Some(ForEach::Items(items)) if items.len() > MAX_FOR_EACH_ITEMS => {
            ctx.error(
                &job_path(name, &[At::Key("for_each")]),
                format!(
                    "`for_each` lists {} items; at most {MAX_FOR_EACH_ITEMS} are allowed",
                    items.len()
                ),
            );
        }
        Some(ForEach::Template(text)) => {
            if template::has_template(text.as_str()) {
                check_template(
                    ctx,
                    &job_path(name, &[At::Key("for_each")]),
                    text.as_str(),
                    Scope {
                        job: Some((name, job)),
                        outputs: false,
                        creation: false,
                        step: None,
                        env: false,
                    },
                    false,
                );
            } else {
                ctx.error(
                    &job_path(name, &[At::Key("for_each")]),
                    "`for_each` must be a list, or a template that renders to a JSON array (`${{ needs.plan.outputs.items }}`)".to_owned(),
                );
            }
        }
        _ => {}
    }
    match (&job.workflow, job.steps.is_empty()) {
        (None, true) => {
            ctx.error(
                &job_path(name, &[At::Key("steps")]),
                format!("job `{quoted}` has no steps"),
            )
            .label = Some("give `steps`, or `workflow` to run another workflow as this job".into());
        }
        (Some(_), false) => {
            ctx.error(
                &job_path(name, &[At::KeyOf("workflow")]),
                format!("job `{quoted}` has both `steps` and `workflow`; give one"),
            );
        }
        (Some(called), true) if called.trim().is_empty() => {
            ctx.error(
                &job_path(name, &[At::Key("workflow")]),
                format!("job `{quoted}` calls an empty `workflow`"),
            );
        }
        _ => {}
    }
    if job.workflow.is_none() && !job.with.is_empty() {
        ctx.error(
            &job_path(name, &[At::KeyOf("with")]),
            format!("job `{quoted}` has `with` but calls no `workflow`"),
        )
        .label = Some("`with` gives the parameters of the workflow named by `workflow`".into());
    }
    for (key, value) in &job.with {
        check_template(
            ctx,
            &job_path(name, &[At::Key("with"), At::Key(key)]),
            value.as_str(),
            Scope {
                job: Some((name, job)),
                outputs: false,
                creation: false,
                step: None,
                env: false,
            },
            false,
        );
    }
    for (i, step) in job.steps.iter().enumerate() {
        check_step(ctx, name, job, i, step);
    }
    if let Some(retry) = &job.retry
        && retry.max_attempts == 0
    {
        ctx.error(
            &job_path(name, &[At::Key("retry"), At::Key("max_attempts")]),
            "`max_attempts` must be at least 1".to_owned(),
        );
    }
    check_matrix(ctx, name, job);
    let scope = Scope {
        job: Some((name, job)),
        outputs: false,
        creation: false,
        step: None,
        env: false,
    };
    for (key, value) in &job.env {
        check_template(
            ctx,
            &job_path(name, &[At::Key("env"), At::Key(key)]),
            value.as_str(),
            scope,
            false,
        );
    }
    for (key, value) in &job.metadata {
        check_template(
            ctx,
            &job_path(name, &[At::Key("metadata"), At::Key(key)]),
            value.as_str(),
            scope,
            false,
        );
    }
    for (key, value) in &job.params {
        let path = job_path(name, &[At::Key("params"), At::KeyOf(key)]);
        match wf.params.get(key) {
            None => {
                let help = ctx
                    .suggester
                    .suggest(key, wf.params.keys().map(String::as_str));
                ctx.error(
                    &path,
                    format!("unknown parameter `{key}` in job `{quoted}`"),
                )
                .help = help;
            }
            Some(param) if !template::has_template(value.as_str()) => {
                if let Err(err) = check_value(key, param, value.as_str()) {
                    ctx.error(
                        &job_path(name, &[At::Key("params"), At::Key(key)]),
                        err.to_string(),
                    );
                }
            }
            Some(_) => check_template(
                ctx,
                &job_path(name, &[At::Key("params"), At::Key(key)]),
                value.as_str(),
                scope,
                false,
            ),
        }
    }
    if let Some(workdir) = &job.workdir {
        check_template(
            ctx,
            &job_path(name, &[At::Key("workdir")]),
            workdir.as_str(),
            scope,
            false,
        );
    }
    if let Some(condition) = &job.condition {
        check_template(
            ctx,
            &job_path(name, &[At::Key("if")]),
            condition.as_str(),
            scope,
            true,
        );
    }
    if let Some(queue) = &job.queue {
        check_template(
            ctx,
            &job_path(name, &[At::Key("queue")]),
            queue,
            scope,
            false,
        );
    }
    if let Some(priority) = &job.priority {
        check_template(
            ctx,
            &job_path(name, &[At::Key("priority")]),
            &priority.0,
            scope,
            false,
        );
    }
    if let Some(runs_on) = &job.runs_on {
        for label in runs_on.iter() {
            check_template(
                ctx,
                &job_path(name, &[At::Key("runs_on")]),
                label.as_str(),
                scope,
                false,
            );
        }
    }
    for (block, decl) in &job.datablocks {
        if !is_valid_block_name(block) {
            ctx.error(
                &job_path(name, &[At::Key("datablocks"), At::KeyOf(block)]),
                invalid_block_name(block),
            );
        }
        check_template(
            ctx,
            &job_path(
                name,
                &[At::Key("datablocks"), At::Key(block), At::Key("path")],
            ),
            decl.path.as_str(),
            scope,
            false,
        );
    }
    for (input, source) in &job.inputs {
        check_input(ctx, name, job, input, source);
    }
}

fn check_matrix<'a>(ctx: &mut Ctx<'a>, name: &'a str, job: &'a Job) {
    let m = &job.matrix;
    let key_error = |ctx: &mut Ctx<'a>, path: &[At<'a>], key: &str| {
        if !is_identifier(key) {
            ctx.error(path, format!("matrix key `{key}` must start with a letter and hold only letters, digits, `_` and `-`"));
        }
    };
    for (axis, values) in &m.axes {
        key_error(
            ctx,
            &job_path(name, &[At::Key("matrix"), At::KeyOf(axis)]),
            axis,
        );
        let path = job_path(name, &[At::Key("matrix"), At::Key(axis)]);
        match values {
            Axis::Values(values) if values.is_empty() => {
                ctx.error(&path, format!("matrix key `{axis}` has no values"));
            }
            Axis::Values(_) => {}
            Axis::Template(text) if template::has_template(text.as_str()) => {
                let scope = Scope {
                    job: Some((name, job)),
                    outputs: false,
                    creation: true,
                    step: None,
                    env: false,
                };
                check_template(ctx, &path, text.as_str(), scope, false);
            }
            Axis::Template(_) => {
                ctx.error(&path, format!("matrix key `{axis}` must be a list of values, or a template that renders to a JSON array (`${{{{ params.systems }}}}`)"));
            }
        }
    }
    for (list, entries) in [("include", &m.include), ("exclude", &m.exclude)] {
        for (i, entry) in entries.iter().enumerate() {
            for key in entry.keys() {
                let path = job_path(
                    name,
                    &[
                        At::Key("matrix"),
                        At::Key(list),
                        At::Index(i),
                        At::KeyOf(key),
                    ],
                );
                key_error(ctx, &path, key);
                if list == "exclude" && !m.axes.contains_key(key) {
                    let help = ctx
                        .suggester
                        .suggest(key, m.axes.keys().map(String::as_str));
                    ctx.error(
                        &path,
                        format!("`exclude` names `{key}`, which is not an axis of the matrix"),
                    )
                    .help = help;
                }
            }
        }
    }
    let written = m
        .axes
        .values()
        .all(|axis| matches!(axis, Axis::Values(v) if !v.is_empty()));
    if written && let Err(problem) = matrix::legs(&job.matrix, &matrix::unknown_axes) {
        ctx.error(
            &job_path(name, &[At::KeyOf("matrix")]),
            format!("job `{}`: {problem}", shown(name)),
        );
    }
    if job.fail_fast && m.is_empty() {
        ctx.error(
            &job_path(name, &[At::KeyOf("fail_fast")]),
            format!("job `{}` has `fail_fast` but no `matrix`", shown(name)),
        );
    }
}

fn check_step<'a>(ctx: &mut Ctx<'a>, name: &'a str, job: &'a Job, i: usize, step: &'a Step) {
    let quoted = shown(name);
    let scope = Scope {
        job: Some((name, job)),
        outputs: false,
        creation: false,
        step: Some(i),
        env: false,
    };
    let given: Vec<&str> = [
        step.run.as_ref().map(|_| "run"),
        step.command.as_ref().map(|_| "command"),
        step.sql.as_ref().map(|_| "sql"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.is_empty() {
        ctx.error(
            &step_path(name, i, &[]),
            format!(
                "step {} of job `{quoted}` needs `run`, `command` or `sql`",
                i + 1
            ),
        );
    } else if given.len() > 1 {
        ctx.error(
            &step_path(name, i, &[At::KeyOf(given[1])]),
            format!(
                "step {} of job `{quoted}` has both `{}` and `{}`; give one",
                i + 1,
                given[0],
                given[1]
            ),
        );
    }
    if let Some(run) = &step.run {
        let path = step_path(name, i, &[At::Key("run")]);
        check_template(ctx, &path, run.as_str(), scope, false);
        check_script(ctx, &path, run.as_str(), step.shell.as_deref());
    }
    if let Some(command) = &step.command {
        if command.is_empty() {
            ctx.error(
                &step_path(name, i, &[At::Key("command")]),
                "`command` needs at least the program to run".to_owned(),
            );
        }
        for (j, item) in command.iter().enumerate() {
            check_template(
                ctx,
                &step_path(name, i, &[At::Key("command"), At::Index(j)]),
                item.as_str(),
                scope,
                false,
            );
        }
    }
    if let Some(sql) = &step.sql {
        check_sql(ctx, name, i, sql, scope);
    }
    if let Some(shell) = &step.shell {
        if step.run.is_none() {
            ctx.error(
                &step_path(name, i, &[At::KeyOf("shell")]),
                "`shell` applies to `run` steps only".to_owned(),
            );
        } else if !is_valid_shell(shell) {
            ctx.error(&step_path(name, i, &[At::Key("shell")]), format!("unknown shell `{shell}`"))
                .label = Some("expected `sh`, `bash`, `python3`, or a command with `{0}` for the script file, like `perl {0}`".into());
        }
    }
    for (key, value) in &step.env {
        check_template(
            ctx,
            &step_path(name, i, &[At::Key("env"), At::Key(key)]),
            value.as_str(),
            scope,
            false,
        );
    }
    if let Some(workdir) = &step.workdir {
        check_template(
            ctx,
            &step_path(name, i, &[At::Key("workdir")]),
            workdir.as_str(),
            scope,
            false,
        );
    }
    if let Some(id) = &step.id {
        let path = step_path(name, i, &[At::Key("id")]);
        if !is_identifier(id) {
            ctx.error(&path, format!("step id `{}` must start with a letter and hold only letters, digits, `_` and `-`", shown(id)));
        } else if job.steps[..i].iter().any(|s| s.id.as_ref() == Some(id)) {
            ctx.error(
                &path,
                format!("job `{quoted}` has two steps with id `{id}`"),
            );
        }
    }
}

/// A `sql:` step: where it connects, one of `query` and `file`, templates only where they
/// are rendered (a value in the query's text would be spliced into SQL).
fn check_sql<'a>(ctx: &mut Ctx<'a>, name: &'a str, i: usize, sql: &'a SqlStep, scope: Scope<'a>) {
    let quoted = shown(name);
    let url = sql.url.as_str();
    let url_path = step_path(name, i, &[At::Key("sql"), At::Key("url")]);
    check_template(ctx, &url_path, url, scope, false);
    if !url.contains("${{") && !is_sql_url(url) {
        ctx.error(&url_path, format!("`{url}` is not a database URL"))
            .label = Some("expected `sqlite:PATH` or `postgres://…`".into());
    }
    match (&sql.query, &sql.file) {
        (None, None) => {
            ctx.error(
                &step_path(name, i, &[At::KeyOf("sql")]),
                format!(
                    "the `sql` of step {} of job `{quoted}` needs `query` or `file`",
                    i + 1
                ),
            );
        }
        (Some(_), Some(_)) => {
            ctx.error(
                &step_path(name, i, &[At::KeyOf("sql"), At::KeyOf("file")]),
                format!(
                    "the `sql` of step {} of job `{quoted}` has both `query` and `file`; give one",
                    i + 1
                ),
            );
        }
        (Some(query), None) => {
            if query.contains("${{") {
                ctx.error(
                    &step_path(name, i, &[At::Key("sql"), At::Key("query")]),
                    "templates are not rendered in a SQL `query`".to_owned(),
                )
                .label = Some(
                    "pass the value in `args` and write `?1` (SQLite) or `$1` (PostgreSQL) \
                     where it goes: values are bound, never spliced into SQL"
                        .into(),
                );
            }
            if query.trim().is_empty() {
                ctx.error(
                    &step_path(name, i, &[At::Key("sql"), At::Key("query")]),
                    "the SQL `query` is empty".to_owned(),
                );
            }
        }
        (None, Some(file)) => check_template(
            ctx,
            &step_path(name, i, &[At::Key("sql"), At::Key("file")]),
            file.as_str(),
            scope,
            false,
        ),
    }
    for (j, arg) in sql.args.iter().enumerate() {
        check_template(
            ctx,
            &step_path(name, i, &[At::Key("sql"), At::Key("args"), At::Index(j)]),
            arg.as_str(),
            scope,
            false,
        );
    }
}

/// Whether `url` names a database a `sql:` step can reach.
fn is_sql_url(url: &str) -> bool {
    url.strip_prefix("sqlite:")
        .is_some_and(|path| !path.is_empty())
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
}

fn check_input<'a>(
    ctx: &mut Ctx<'a>,
    name: &'a str,
    job: &'a Job,
    input: &'a str,
    source: &'a str,
) {
    let wf = ctx.wf;
    let path = [
        At::Key("jobs"),
        At::Key(name),
        At::Key("inputs"),
        At::Key(input),
    ];
    if !is_identifier(input) {
        ctx.error(&[At::Key("jobs"), At::Key(name), At::Key("inputs"), At::KeyOf(input)], format!("input name `{input}` must start with a letter and hold only letters, digits, `_` and `-`"));
    }
    let Some((producer, block)) = source.split_once('.') else {
        ctx.error(
            &path,
            format!("input `{input}` must name `job.block`, found `{source}`"),
        );
        return;
    };
    if !is_valid_block_name(block) {
        let (pos, end) = ctx.extent(&path);
        let pos = ctx.refine(pos, end, block);
        ctx.out
            .push(Diagnostic::error(pos, invalid_block_name(block)));
        return;
    }
    let Some(producer_job) = wf.jobs.get(producer) else {
        let help = ctx
            .suggester
            .suggest(producer, wf.jobs.keys().map(String::as_str));
        ctx.error(
            &path,
            format!(
                "input `{input}` reads from job `{producer}`, which is not a job of this workflow"
            ),
        )
        .help = help;
        return;
    };
    if !producer_job.datablocks.contains_key(block) {
        let produced = || producer_job.datablocks.keys().map(String::as_str);
        let message = if producer_job.datablocks.is_empty() {
            format!(
                "job `{producer}` produces no DataBlocks, so input `{input}` cannot read `{block}`"
            )
        } else {
            format!(
                "job `{producer}` does not produce a DataBlock `{block}`; it produces {}",
                list_names(produced())
            )
        };
        let help = ctx.suggester.suggest(block, produced());
        ctx.error(&path, message).help = help;
        return;
    }
    // The producer is upstream: `inputs` implies `needs` (`Workflow::imply_needs`).
    let _ = job;
}

/// The message for a DataBlock name that publishing would refuse (the same words as
/// `blocks::Error::InvalidName`).
fn invalid_block_name(name: &str) -> String {
    format!("invalid DataBlock name `{name}`: {BLOCK_NAME_RULE}")
}

/// The index of each job that each job needs (unknown names left out).
fn need_indexes(wf: &Workflow) -> Vec<Vec<usize>> {
    wf.jobs
        .values()
        .map(|job| {
            job.needs
                .iter()
                .filter_map(|n| wf.jobs.get_index_of(n.as_str()))
                .collect()
        })
        .collect()
}

/// Checks a template's syntax and that everything it reads can exist.
fn check_template<'a>(
    ctx: &mut Ctx<'a>,
    path: &[At<'a>],
    text: &str,
    scope: Scope<'_>,
    condition: bool,
) {
    if !template::has_template(text) && !condition {
        return;
    }
    let refs = if condition {
        template::condition_references(text)
    } else {
        template::references(text)
    };
    let refs = match refs {
        Ok(refs) => refs,
        Err(message) => {
            let (pos, end) = ctx.extent(path);
            let pos = ctx.refine(pos, end, template::OPEN);
            ctx.out.push(Diagnostic::error(
                pos,
                format!("invalid template: {message}"),
            ));
            return;
        }
    };
    let env_value = matches!(path.iter().rev().nth(1), Some(At::Key("env")));
    let secret_outside_env = refs
        .iter()
        .find(|r| r.split('.').next() == Some("secrets") && !env_value)
        .cloned();
    let scope = Scope {
        env: env_value,
        ..scope
    };
    let problems: Vec<(String, (String, Option<String>))> = refs
        .into_iter()
        .filter(|reference| {
            // `if: ${{ always() }}`: the status functions of a job's condition.
            !(condition
                && scope.job.is_some()
                && template::STATUS_FUNCTIONS.contains(&reference.as_str()))
        })
        .filter_map(|reference| {
            let problem = reference_problem(ctx.wf, &ctx.suggester, &reference, scope)?;
            Some((reference, problem))
        })
        .collect();
    if let Some(secret) = secret_outside_env
        && scope.step.is_some()
        && !problems.iter().any(|(r, _)| *r == secret)
    {
        let (pos, end) = ctx.extent(path);
        let at = ctx
            .locate(pos, end, [secret.as_str()])
            .get(secret.as_str())
            .copied()
            .unwrap_or(pos);
        ctx.out.push(
            Diagnostic::warning(at, format!("`{secret}` is pasted into the step's text, where it can leak (process listings, script files)"))
                .with_help(Some("pass it through `env:` and read the variable instead: `env: { TOKEN: \"${{ secrets.TOKEN }}\" }`".to_owned())),
        );
    }
    if problems.is_empty() {
        return;
    }
    let (pos, end) = ctx.extent(path);
    let places = ctx.locate(pos, end, problems.iter().map(|(r, _)| r.as_str()));
    let diagnostics: Vec<Diagnostic> = problems
        .iter()
        .map(|(reference, (message, help))| {
            let at = places.get(reference.as_str()).copied().unwrap_or(pos);
            Diagnostic::error(at, message.clone()).with_help(help.clone())
        })
        .collect();
    ctx.out.extend(diagnostics);
}

/// Warns about every value the author does not control that a `run:` script pastes in,
/// pointing at its `${{ … }}`. An expression quoted as a whole is safe in a POSIX shell.
fn check_script<'a>(ctx: &mut Ctx<'a>, path: &[At<'a>], script: &str, shell: Option<&str>) {
    if !template::has_template(script) {
        return;
    }
    let language = Language::of(shell);
    let (node, end) = ctx.extent(path);
    let mut from = Some(node);
    for expression in template::expressions(script) {
        // The same text may appear twice: each search starts after the previous find. One
        // not found is written differently in the source (escaped, folded): the rest point
        // at the script, so that the script is read once however many expressions it has.
        let found = from.and_then(|from| ctx.find(from, expression.text, end));
        from = found.map(|pos| ctx.advance(pos, pos.offset + expression.text.len()));
        let pos = found.unwrap_or(node);
        if language == Language::Shell && expression.is_quoted() {
            continue;
        }
        let Some(references) = expression.references() else {
            continue;
        };
        for reference in references {
            if let Some(untrusted) = injection::classify(ctx.wf, &reference) {
                ctx.out.push(
                    Diagnostic::warning(pos, untrusted.message())
                        .with_label(untrusted.label())
                        .with_help(Some(untrusted.help(language))),
                );
            }
        }
    }
}

/// Why a dotted reference cannot resolve, with an optional hint; `None` when it can.
fn reference_problem(
    wf: &Workflow,
    suggester: &Suggester,
    reference: &str,
    scope: Scope<'_>,
) -> Option<(String, Option<String>)> {
    let mut parts = reference.split('.');
    let root = parts.next().unwrap_or_default();
    if scope.creation && root != "params" {
        return Some((
            format!(
                "`{reference}`: a matrix axis is rendered when the run is created, and can read only `params`"
            ),
            None,
        ));
    }
    let second = parts.next();
    let third = parts.next();
    match root {
        "params" => {
            let name = second?;
            if wf.params.contains_key(name) {
                None
            } else {
                Some((
                    format!("`{reference}` reads an unknown parameter `{name}`"),
                    suggester.suggest(name, wf.params.keys().map(String::as_str)),
                ))
            }
        }
        "needs" => {
            let Some((job_name, job)) = scope.job else {
                return Some(("`needs` can only be read inside a job".to_owned(), None));
            };
            let job_name = shown(job_name);
            let need = second?;
            if !job.needs.iter().any(|n| n == need) {
                let hint = if wf.jobs.contains_key(need) {
                    Some(format!("add `{need}` to the `needs` of `{job_name}`"))
                } else {
                    suggester.suggest(need, job.needs.iter().map(String::as_str))
                };
                return Some((
                    format!("`{reference}` reads job `{need}`, which `{job_name}` does not need"),
                    hint,
                ));
            }
            match third {
                None | Some("outputs" | "result") => None,
                Some(other) => Some((
                    format!("`{reference}`: a need has `outputs` and `result`, not `{other}`"),
                    suggester.suggest(other, ["outputs", "result"]),
                )),
            }
        }
        "matrix" => {
            let Some((job_name, job)) = scope.job else {
                return Some(("`matrix` can only be read inside a job".to_owned(), None));
            };
            let job_name = shown(job_name);
            let key = second?;
            if job.matrix.keys().any(|k| k == key) {
                None
            } else if job.matrix.is_empty() {
                Some((
                    format!("`{reference}`: job `{job_name}` has no `matrix`"),
                    None,
                ))
            } else {
                Some((
                    format!("`{reference}` reads an unknown matrix key `{key}`"),
                    suggester.suggest(key, job.matrix.keys()),
                ))
            }
        }
        "each" => match (scope.job, second) {
            (Some((_, job)), None | Some("value" | "index")) if job.for_each.is_some() => None,
            (Some((_, job)), Some(other)) if job.for_each.is_some() => Some((
                format!("`{reference}`: `each` has `value` and `index`, not `{other}`"),
                suggester.suggest(other, ["value", "index"]),
            )),
            _ => Some((
                format!("`{reference}`: `each` can only be read in a `for_each` job"),
                None,
            )),
        },
        "run" => match second {
            None | Some("id" | "workflow") => None,
            Some(other) => Some((
                format!("`{reference}`: `run` has `id` and `workflow`, not `{other}`"),
                suggester.suggest(other, ["id", "workflow"]),
            )),
        },
        "job" => match (second, scope.job) {
            (_, None) => Some(("`job` can only be read inside a job".to_owned(), None)),
            (None | Some("name"), _) => None,
            (Some(other), _) => Some((
                format!("`{reference}`: `job` has `name`, not `{other}`"),
                suggester.suggest(other, ["name"]),
            )),
        },
        "jobs" if scope.outputs => {
            let name = second?;
            if !wf.jobs.contains_key(name) {
                return Some((
                    format!("`{reference}` reads an unknown job `{name}`"),
                    suggester.suggest(name, wf.jobs.keys().map(String::as_str)),
                ));
            }
            match third {
                None | Some("outputs" | "result") => None,
                Some(other) => Some((
                    format!("`{reference}`: a job has `outputs` and `result`, not `{other}`"),
                    suggester.suggest(other, ["outputs", "result"]),
                )),
            }
        }
        "steps" => {
            let Some(((job_name, job), i)) = scope.job.zip(scope.step) else {
                return Some((
                    "`steps` can only be read in the steps of a job".to_owned(),
                    None,
                ));
            };
            let id = second?;
            let earlier = || job.steps[..i].iter().filter_map(|s| s.id.as_deref());
            if !earlier().any(|s| s == id) {
                let later = job.steps[i + 1..]
                    .iter()
                    .any(|s| s.id.as_deref() == Some(id));
                let message = if later {
                    format!("`{reference}` reads step `{id}`, which runs after this one")
                } else {
                    format!(
                        "`{reference}` reads step `{id}`, and no earlier step of job `{}` has that id",
                        shown(job_name)
                    )
                };
                return Some((message, suggester.suggest(id, earlier())));
            }
            match third {
                None | Some("outputs" | "outcome") => None,
                Some(other) => Some((
                    format!("`{reference}`: a step has `outputs` and `outcome`, not `{other}`"),
                    suggester.suggest(other, ["outputs", "outcome"]),
                )),
            }
        }
        "secrets" => {
            let name = second?;
            if !wf.secrets.contains_key(name) {
                return Some((
                    format!("`{reference}` reads an unknown secret `{name}`"),
                    suggester.suggest(name, wf.secrets.keys().map(String::as_str)),
                ));
            }
            if !scope.env && scope.step.is_none() {
                return Some((
                    format!(
                        "`{reference}`: secrets are read when a job starts, so only `env` values and steps can read them"
                    ),
                    None,
                ));
            }
            None
        }
        "env" | "trigger" => None,
        // Functions minijinja provides.
        "range" | "dict" | "namespace" | "debug" | "loop" => None,
        other => Some((
            format!(
                "unknown name `{other}` in template: expected `params`, `needs`, `steps`, `matrix`, `each`, `env`, `secrets`, `run`, `job` or `trigger`"
            ),
            suggester.suggest(
                other,
                [
                    "params", "needs", "steps", "matrix", "each", "env", "secrets", "run", "job",
                    "trigger",
                ],
            ),
        )),
    }
}

fn check_cycles(ctx: &mut Ctx<'_>) {
    let names: Vec<&str> = ctx.wf.jobs.keys().map(String::as_str).collect();
    for cycle in find_cycles(&need_indexes(ctx.wf)) {
        let mut shown: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        shown.push(names[cycle[0]]);
        let first = names[cycle[0]];
        ctx.error(
            &[At::Key("jobs"), At::KeyOf(first)],
            format!("dependency cycle: {}", shown.join(" -> ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::load::parse_str;

    fn errors(src: &str) -> Vec<String> {
        match parse_str("wf.yaml", src) {
            Ok(_) => Vec::new(),
            Err(err) => err
                .diagnostics
                .iter()
                .map(|d| {
                    let help = d
                        .help
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    format!("{}:{}: {}{help}", d.pos.line, d.pos.col, d.message)
                })
                .collect(),
        }
    }

    /// The warnings of a valid file, as `line:col: message`.
    fn warnings(src: &str) -> Vec<String> {
        let loaded = parse_str("wf.yaml", src).expect("valid");
        loaded
            .warnings
            .iter()
            .map(|d| format!("{}:{}: {}", d.pos.line, d.pos.col, d.message))
            .collect()
    }

    #[test]
    fn workflow_outputs_read_jobs_of_the_workflow_only() {
        let found = errors(
            "outputs:\n  rows: ${{ jobs.load.outputs.rows }}\n  state: ${{ jobs.load.result }}\n  bad: ${{ jobs.lod.outputs.rows }}\n  worse: ${{ needs.load.outputs.rows }}\njobs:\n  load:\n    steps: [{ run: x }]\n",
        );
        assert_eq!(
            found,
            [
                "4:12: `jobs.lod.outputs.rows` reads an unknown job `lod` (did you mean `load`?)",
                "5:14: `needs` can only be read inside a job",
            ]
        );
    }

    #[test]
    fn untrusted_values_pasted_into_scripts_are_warnings() {
        let found = warnings(
            "params:\n  name: {}\njobs:\n  a:\n    steps:\n      - run: |\n          echo \"${{ params.name }}\"; echo ${{ params.name }}\n          echo ${{ needs.b.outputs.rows }}\n    needs: [b]\n  b:\n    steps:\n      - run: print(${{ params.name | quote }})\n        shell: python3\n",
        );
        assert_eq!(
            found,
            [
                "7:17: script injection: `params.name`, a string parameter, is pasted into the script",
                "7:43: script injection: `params.name`, a string parameter, is pasted into the script",
                "8:16: script injection: `needs.b.outputs.rows`, output of another job, is pasted into the script",
                "12:20: script injection: `params.name`, a string parameter, is pasted into the script",
            ]
        );
    }

    #[test]
    fn trusted_or_quoted_values_and_other_places_are_not_warned_about() {
        let found = warnings(
            "params:\n  name: {}\n  n: { type: int }\n  src: { type: datablock, default: raw }\nenv: { NAME: '${{ params.name }}' }\njobs:\n  a:\n    matrix: { os: [linux] }\n    if: ${{ params.name != 'x' }}\n    metadata: { who: '${{ params.name }}' }\n    env: { N: '${{ params.name }}' }\n    steps:\n      - run: echo ${{ params.name | quote }} ${{ params.n }} ${{ params.src }} ${{ matrix.os }} ${{ run.id }} ${{ job.name }} ${{ env.NAME }}\n      - command: [echo, '${{ params.name }}']\n      - run: echo ${{ needs.b.result }}\n        env: { ROWS: '${{ needs.b.outputs.rows }}' }\n    needs: [b]\n  b:\n    steps: [{ run: 'true' }]\n",
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn datablock_names_are_checked_where_they_are_written() {
        let found = errors(
            "triggers:\n  - datablock: 'raw orders'\njobs:\n  p:\n    steps: [{ run: x }]\n    datablocks: { 'a/b': { path: o.csv }, ok.v2: { path: o.csv } }\n  q:\n    needs: [p]\n    inputs: { o: 'p.x y', k: p.ok.v2 }\n    steps: [{ run: x }]\n",
        );
        assert_eq!(
            found,
            [
                "2:16: invalid DataBlock name `raw orders`: use letters, digits, `_`, `-` and `.`",
                "6:19: invalid DataBlock name `a/b`: use letters, digits, `_`, `-` and `.`",
                "9:21: invalid DataBlock name `x y`: use letters, digits, `_`, `-` and `.`",
            ]
        );
    }

    #[test]
    fn needs_and_cycles() {
        let found = errors(
            "jobs:\n  a:\n    needs: [c]\n    steps: [{ run: x }]\n  b:\n    needs: [a, bulid]\n    steps: [{ run: x }]\n  c:\n    needs: b\n    steps: [{ run: x }]\n  build:\n    steps: [{ run: x }]\n",
        );
        assert_eq!(
            found,
            [
                "2:3: dependency cycle: a -> c -> b -> a",
                "6:16: job `b` needs `bulid`, which is not a job of this workflow (did you mean `build`?)",
            ]
        );
    }

    #[test]
    fn triggers_durations_and_zones() {
        let found = errors(
            "triggers:\n  - schedule: '61 * * * *'\n    timezone: Europe/Berln\n  - every: 0s\n  - at: tomorrow\njobs:\n  a:\n    timeout: 10 minutes\n    steps: [{ run: x }]\n",
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found[0].starts_with("2:15: invalid cron expression"),
            "{found:#?}"
        );
        assert!(
            found[1].contains("unknown time zone `Europe/Berln` (did you mean `Europe/Berlin`?)")
        );
    }

    #[test]
    fn templates_must_resolve() {
        let found = errors(
            "params:\n  date: {}\njobs:\n  a:\n    matrix: { os: [x] }\n    steps:\n      - run: |\n          echo ${{ params.dat }}\n          echo ${{ matrix.oss }} ${{ needs.b.result }}\n  b:\n    needs: [a]\n    if: ${{ needs.a.outputs.rows != '0' && paramz.x }}\n    steps: [{ run: x }]\n",
        );
        assert_eq!(
            found,
            [
                "8:20: `params.dat` reads an unknown parameter `dat` (did you mean `date`?)",
                "9:20: `matrix.oss` reads an unknown matrix key `oss` (did you mean `os`?)",
                "9:38: `needs.b.result` reads job `b`, which `a` does not need (add `b` to the `needs` of `a`)",
                "12:44: unknown name `paramz` in template: expected `params`, `needs`, `steps`, `matrix`, `each`, `env`, `secrets`, `run`, `job` or `trigger` (did you mean `params`?)",
            ]
        );
    }

    #[test]
    fn inputs_and_defaults() {
        let found = errors(
            "params:\n  n: { type: int, default: many }\n  r: { choices: [a, b], default: c }\njobs:\n  p:\n    steps: [{ run: x }]\n    datablocks: { orders: { path: o.csv } }\n  q:\n    needs: [p]\n    inputs: { o: p.ordrs, x: z.y }\n    steps: [{ run: x }]\n  r:\n    inputs: { o: p.orders }\n    steps: [{ command: [] }]\n",
        );
        // `r` reads `p.orders` without `needs: [p]`: `inputs` implies it, no error.
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].contains("default value does not fit: parameter `n` expects an integer"));
        assert!(found[2].contains("does not produce a DataBlock `ordrs`; it produces `orders` (did you mean `orders`?)"), "{found:#?}");
    }
}
