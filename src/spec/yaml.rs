//! A YAML document as a tree of nodes that remember where they came from.
//!
//! The event parser (`saphyr-parser`) gives positions; this module builds [`Node`]s from its
//! events, expands aliases and merge keys (`<<`), refuses duplicate keys, and bounds depth and
//! alias expansion so that hostile input cannot exhaust the stack or memory. Typing the tree
//! against the workflow model is left to [`crate::spec::check`] and [`crate::spec::de`].

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};

use crate::spec::MAX_NESTING;
use crate::spec::diag::{Diagnostic, Pos};
/// Most nodes a document may hold, aliases expanded (a "billion laughs" guard): room for a
/// 100,000-job workflow (about 12 nodes a job), while an alias bomb stops at a few hundred
/// megabytes, before it is cloned (aliases are counted before they expand).
const MAX_NODES: usize = 4_000_000;

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
    /// The byte offset where the node's text ends in the source (for an alias, where the
    /// alias ends), so that a search inside a scalar's text reads that text only.
    pub end: usize,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are nodes so that their positions survive.
    Map(Vec<(Node, Node)>),
}

/// The YAML 1.2 core-schema reading of a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    /// The node's scalar text, if it is a scalar.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping node.
    #[must_use]
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence node.
    #[must_use]
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under `key` in a mapping node.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, value)| value)
    }

    /// The key node and value node under `key` in a mapping node.
    #[must_use]
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// The core-schema reading of a scalar node (`None` for collections).
    #[must_use]
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        match &self.kind {
            NodeKind::Scalar { text, plain: true } => Some(resolve_plain(text)),
            NodeKind::Scalar { text, plain: false } => Some(Scalar::Str(text)),
            _ => None,
        }
    }

    /// Whether this node is a null scalar (`~`, `null` or nothing).
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self.scalar(), Some(Scalar::Null))
    }

    /// A short description of the node's kind for messages: "a map", "a list", "`abc`".
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Map(_) => "a map".to_owned(),
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Scalar { .. } if self.is_null() => "nothing (null)".to_owned(),
            NodeKind::Scalar { text, .. } => {
                let shown: String = text.chars().take(40).collect();
                if shown.len() < text.len() {
                    format!("`{shown}…`")
                } else {
                    format!("`{shown}`")
                }
            }
        }
    }
}

/// Reads a plain scalar as YAML 1.2's core schema does.
#[must_use]
pub fn resolve_plain(text: &str) -> Scalar<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    if let Ok(value) = text.parse::<i64>() {
        return Scalar::Int(value);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(value) = i64::from_str_radix(hex, 16)
    {
        return Scalar::Int(value);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(value) = i64::from_str_radix(oct, 8)
    {
        return Scalar::Int(value);
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(value) = text.parse::<f64>() {
        return Scalar::Float(value);
    }
    Scalar::Str(text)
}

/// Parses `source` into its single document's root node.
///
/// # Errors
/// A syntax error, a duplicate key, an unknown alias, too deep a nesting or too large an alias
/// expansion, each as a positioned diagnostic. A file with several documents is refused.
pub fn parse(source: &str) -> Result<Option<Node>, Diagnostic> {
    let mut builder = Builder::new(source);
    let mut parser = Parser::new_from_str(source);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|err| {
            let mark = err.marker();
            Diagnostic::error(
                builder.pos_at(mark.line(), mark.col(), 1),
                format!("invalid YAML: {}", err.info()),
            )
        })?;
        if builder.on_event(event, span)? {
            break;
        }
    }
    Ok(builder.root)
}

/// A collection under construction.
enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        pos: Pos,
        anchor: usize,
        /// Keys seen so far and the line of each, for the duplicate check.
        seen: HashMap<String, u32>,
    },
}

struct Builder<'s> {
    source: &'s str,
    /// Byte offset of each line start, for turning character positions into byte spans.
    line_starts: Vec<usize>,
    /// Whether the source is ASCII, where a character column is its byte offset too.
    ascii: bool,
    /// The last position turned into a byte offset, as (line, character column, byte
    /// column): the next one on the same line is counted on from there, so that the
    /// positions along a long line (a flow list of 50,000 names) cost linear time in all.
    cursor: Cell<(usize, usize, usize)>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
}

impl<'s> Builder<'s> {
    fn new(source: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Builder {
            source,
            line_starts,
            ascii: source.is_ascii(),
            cursor: Cell::new((0, 0, 0)),
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
            nodes: 0,
        }
    }

    /// A position from the parser's 1-based line and 0-based character column.
    fn pos_at(&self, line: usize, col: usize, len: usize) -> Pos {
        let line = line.max(1);
        let start = self
            .line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(self.source.len());
        let end = self
            .line_starts
            .get(line)
            .map_or(self.source.len(), |next| next - 1);
        let line_text = &self.source[start..end.max(start)];
        let byte_col = self.byte_col(line, line_text, col);
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: col_u32(col),
            offset: start + byte_col,
            len,
        }
    }

    /// The byte offset of character column `col` in `line_text`, the text of line `line`.
    fn byte_col(&self, line: usize, line_text: &str, col: usize) -> usize {
        if self.ascii {
            return col.min(line_text.len());
        }
        let (from_col, from_byte) = match self.cursor.get() {
            (at_line, at_col, at_byte) if at_line == line && at_col <= col => (at_col, at_byte),
            _ => (0, 0),
        };
        let byte_col = line_text[from_byte..]
            .char_indices()
            .nth(col - from_col)
            .map_or(line_text.len(), |(i, _)| from_byte + i);
        self.cursor.set((line, col, byte_col));
        byte_col
    }

    /// The byte offset where `span` ends.
    fn end_of(&self, span: YamlSpan) -> usize {
        self.pos_at(span.end.line(), span.end.col(), 1).offset
    }

    fn pos_of(&self, span: YamlSpan) -> Pos {
        let start = span.start;
        let len = if span.end.line() == start.line() {
            span.end.col().saturating_sub(start.col()).max(1)
        } else {
            1
        };
        self.pos_at(start.line(), start.col(), len)
    }

    /// Handles one event; returns true when the first document is complete.
    fn on_event(&mut self, event: Event<'_>, span: YamlSpan) -> Result<bool, Diagnostic> {
        let pos = self.pos_of(span);
        let end = self.end_of(span).max(pos.offset);
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => Ok(false),
            Event::StreamEnd => Ok(true),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        pos,
                        "a workflow file holds one YAML document; found a second one".to_owned(),
                    ));
                }
                Ok(false)
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(Diagnostic::error(
                        pos,
                        "alias to an unknown anchor".to_owned(),
                    ));
                };
                self.nodes += count_nodes(&node);
                if self.nodes > MAX_NODES {
                    return Err(Diagnostic::error(
                        pos,
                        format!("aliases expand this document beyond {MAX_NODES} nodes"),
                    ));
                }
                // An alias keeps the position of its use, so messages point where it is read.
                let node = Node { pos, end, ..node };
                self.push_node(node)
            }
            Event::Scalar(text, style, anchor, _tag) => {
                self.bump_nodes(pos)?;
                let plain = style == ScalarStyle::Plain;
                let len = if plain {
                    text.chars().count().max(1)
                } else {
                    pos.len
                };
                // The scanner's buffer may be far larger than the text: keep only the text.
                let mut text = text.into_owned();
                text.shrink_to_fit();
                let node = Node {
                    kind: NodeKind::Scalar { text, plain },
                    pos: Pos { len, ..pos },
                    end,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_node(node)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                });
                Ok(false)
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    pos,
                    anchor,
                    seen: HashMap::new(),
                });
                Ok(false)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq {
                        mut items,
                        pos,
                        anchor,
                    }) => {
                        items.shrink_to_fit();
                        let node = Node {
                            kind: NodeKind::Seq(items),
                            pos,
                            end,
                        };
                        self.remember(anchor, &node);
                        node
                    }
                    Some(Frame::Map {
                        entries,
                        pos,
                        anchor,
                        ..
                    }) => {
                        let mut entries = merge_keys(entries)?;
                        entries.shrink_to_fit();
                        let node = Node {
                            kind: NodeKind::Map(entries),
                            pos,
                            end,
                        };
                        self.remember(anchor, &node);
                        node
                    }
                    None => return Err(Diagnostic::error(pos, "unbalanced YAML".to_owned())),
                };
                self.push_node(node)
            }
        }
    }

    fn bump_nodes(&mut self, pos: Pos) -> Result<(), Diagnostic> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(
                pos,
                format!("this document has more than {MAX_NODES} nodes"),
            ));
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos) -> Result<(), Diagnostic> {
        self.bump_nodes(pos)?;
        if self.stack.len() >= MAX_NESTING {
            return Err(Diagnostic::error(
                pos,
                format!("nesting deeper than {MAX_NESTING} levels is not supported"),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn push_node(&mut self, node: Node) -> Result<bool, Diagnostic> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(false)
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(false)
            }
            Some(Frame::Map {
                entries, key, seen, ..
            }) => {
                match key.take() {
                    None => {
                        if !matches!(node.kind, NodeKind::Scalar { .. }) {
                            return Err(Diagnostic::error(
                                node.pos,
                                "a map key must be a plain value, not a list or a map".to_owned(),
                            ));
                        }
                        *key = Some(node);
                    }
                    Some(k) => {
                        let text = k.as_text().unwrap_or_default();
                        if text != "<<" {
                            if let Some(first_line) = seen.get(text) {
                                return Err(Diagnostic::error(
                                    k.pos,
                                    format!(
                                        "duplicate key `{text}` (first given at line {first_line})"
                                    ),
                                ));
                            }
                            seen.insert(text.to_owned(), k.pos.line);
                        }
                        entries.push((k, node));
                    }
                }
                Ok(false)
            }
        }
    }
}

fn col_u32(col: usize) -> u32 {
    u32::try_from(col + 1).unwrap_or(u32::MAX)
}

/// Applies YAML merge keys: `<<: *base` or `<<: [*a, *b]` add the entries the map lacks.
/// Linear in the entries (a merge of two maps of 50,000 keys each is no slower than reading
/// them).
fn merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Diagnostic> {
    if !entries.iter().any(|(k, v)| is_merge_key(k, v)) {
        return Ok(entries);
    }
    let mut own = Vec::with_capacity(entries.len());
    let mut merged: Vec<(Node, Node)> = Vec::new();
    let mut merged_keys: HashSet<String> = HashSet::new();
    for (key, value) in entries {
        if !is_merge_key(&key, &value) {
            own.push((key, value));
            continue;
        }
        let sources = match value.kind {
            NodeKind::Map(map) => vec![map],
            NodeKind::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.kind {
                        NodeKind::Map(map) => maps.push(map),
                        _ => {
                            return Err(Diagnostic::error(
                                item.pos,
                                "a merge key (`<<`) takes a map or a list of maps".to_owned(),
                            ));
                        }
                    }
                }
                maps
            }
            NodeKind::Scalar { .. } => {
                return Err(Diagnostic::error(
                    value.pos,
                    "a merge key (`<<`) takes a map or a list of maps".to_owned(),
                ));
            }
        };
        for map in sources {
            for (k, v) in map {
                if merged_keys.insert(k.as_text().unwrap_or_default().to_owned()) {
                    merged.push((k, v));
                }
            }
        }
    }
    let own_keys: HashSet<String> = own
        .iter()
        .map(|(k, _)| k.as_text().unwrap_or_default().to_owned())
        .collect();
    own.extend(
        merged
            .into_iter()
            .filter(|(k, _)| !own_keys.contains(k.as_text().unwrap_or_default())),
    );
    Ok(own)
}

fn is_merge_key(key: &Node, value: &Node) -> bool {
    matches!(&key.kind, NodeKind::Scalar { text, plain: true } if text == "<<")
        && !matches!(value.kind, NodeKind::Scalar { .. } if value.is_null())
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        parse(src).expect("valid yaml").expect("a document")
    }

    #[test]
    fn positions_are_one_based() {
        let node = root("a: 1\nbb:\n  c: [x, y]\n");
        let (key, value) = node.entry("bb").unwrap();
        assert_eq!((key.pos.line, key.pos.col), (2, 1));
        let c = value.get("c").unwrap();
        assert_eq!((c.pos.line, c.pos.col), (3, 6));
        assert_eq!(c.as_seq().unwrap()[1].pos.col, 10);
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        assert_eq!(resolve_plain("12"), Scalar::Int(12));
        assert_eq!(resolve_plain("1.5"), Scalar::Float(1.5));
        assert_eq!(resolve_plain("yes"), Scalar::Str("yes"));
        assert_eq!(resolve_plain("~"), Scalar::Null);
        assert_eq!(resolve_plain("1h30m"), Scalar::Str("1h30m"));
        assert_eq!(resolve_plain("e"), Scalar::Str("e"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(
            err.message
                .contains("duplicate key `a` (first given at line 1)"),
            "{err:?}"
        );
    }

    #[test]
    fn anchors_and_merge_keys_expand() {
        let node = root("base: &b { x: 1, y: 2 }\nother:\n  <<: *b\n  y: 3\n");
        let other = node.get("other").unwrap();
        assert_eq!(other.get("x").unwrap().as_text(), Some("1"));
        assert_eq!(other.get("y").unwrap().as_text(), Some("3"));
        assert!(other.get("<<").is_none());
    }

    #[test]
    fn hostile_input_is_refused_not_fatal() {
        let deep = "[".repeat(100_000);
        assert_eq!(parse(&deep).unwrap_err().pos.line, 1);
        assert_eq!(parse(&"{a: ".repeat(100_000)).unwrap_err().pos.line, 1);
        let blocks: String = (0..1000)
            .map(|d| format!("{}k:\n", " ".repeat(d)))
            .collect();
        let err = parse(&blocks).unwrap_err();
        assert_eq!(err.pos.line, 65, "{err:?}");
        assert!(err.message.contains("deeper than 64"), "{err:?}");
        let laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n\
                      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
                      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n\
                      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        assert!(parse(laughs).is_err());
        assert!(parse("a: 'unclosed\n").is_err());
        assert!(parse("a:\n\t- b\n").is_err());
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn positions_along_a_long_line_are_exact_and_linear() {
        // 50,000 entries on one line with non-ASCII text: each position is counted on from
        // the previous one, not from the line start.
        let items: Vec<String> = (0..50_000).map(|i| format!("é{i}")).collect();
        let src = format!("k: [{}]\n", items.join(", "));
        let started = std::time::Instant::now();
        let node = root(&src);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        let items = node.get("k").unwrap().as_seq().unwrap();
        let last = &items[49_999];
        let col = src.chars().take_while(|&c| c != ']').count() - "é49999".chars().count();
        assert_eq!(
            (last.pos.line, last.pos.col),
            (1, u32::try_from(col + 1).unwrap())
        );
        assert_eq!(&src[last.pos.offset..last.end], "é49999");
    }

    #[test]
    fn a_node_knows_where_its_text_ends() {
        let src = "a: |\n  echo ${{ x }}\n  done\nb: 'q'\n";
        let node = root(src);
        let a = node.get("a").unwrap();
        assert!(
            src[a.pos.offset..a.end].contains("done"),
            "{:?}",
            &src[a.pos.offset..a.end]
        );
        let b = node.get("b").unwrap();
        assert_eq!(&src[b.pos.offset..b.end], "'q'");
    }

    #[test]
    fn merging_large_maps_takes_linear_time() {
        let keys: String = (0..50_000).map(|i| format!("  k{i}: {i}\n")).collect();
        let src = format!(
            "base: &b\n{keys}other:\n  <<: *b\n{}",
            keys.replace('k', "q")
        );
        let started = std::time::Instant::now();
        let node = root(&src);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        assert_eq!(node.get("other").unwrap().as_map().unwrap().len(), 100_000);
    }
}
