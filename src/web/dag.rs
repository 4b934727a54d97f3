//! The DAG of a run drawn as an SVG string, for the run page of the web UI (rendered on the
//! server; a little script recolours nodes live). Pure code: no I/O, no async.
//!
//! # Drawing
//!
//! A layered (Sugiyama-style) drawing, left to right:
//!
//! 1. **Layers.** A job's layer is the longest path to it from a job that needs nothing
//!    ([`crate::spec::dag::levels`]). Needs naming no job of the list are ignored, as are
//!    repeated needs. The DAG is validated upstream, but a cycle is not fatal: the
//!    topological sort here, when it gets stuck, takes the earliest declared job left and
//!    drops its needs on jobs not yet placed. Those edges are still drawn (backwards), they
//!    just do not count for layers and ordering; a job needing itself gets no edge.
//! 2. **Order within a layer.** Layers start in declaration order; then alternating sweeps
//!    rightwards (sort each layer by the mean height of the needs) and leftwards (by the mean
//!    height of the dependents), a few times, keeping the order with the fewest crossings.
//!    Crossings are counted between adjacent layers only, as inversions with a Fenwick tree,
//!    so a sweep costs O(E log V): 1,000 jobs with 3,000 edges take milliseconds. No dummy
//!    nodes are inserted: an edge skipping layers is one curve and may pass behind the boxes
//!    in between (edges are drawn first, boxes on top).
//! 3. **Coordinates.** Fixed boxes of [`NODE_WIDTH`] × [`NODE_HEIGHT`]; each layer is a
//!    column, centred vertically. Edges are cubic Béziers from the right middle of the need
//!    to the left middle of the dependent, with an arrowhead.
//!
//! Written by hand rather than with a crate: `petgraph` would only bring a topological sort,
//! which the crate already has ([`crate::spec::dag`]); `layout-rs` (no dependencies, about
//! 200 KB of source with a Graphviz parser and renderers) ranks by its own rules rather than
//! by longest path, routes edges through dummy nodes, renders through its own backend
//! (inline styles, no hooks for `data-*` attributes), and counts crossings over all pairs of
//! nodes per layer at every step. Measured (debug, dependencies at `opt-level = 1` as in
//! this crate) on graphs shaped like the 1,000-job test below: 1.4 s for 100 jobs, 24 s for
//! 400, unfinished after 400 s for 1,000. The layout here is about 220 lines and draws the
//! 1,000-job test in tens of milliseconds.
//!
//! # SVG contract (the page's CSS and script rely on it)
//!
//! ```text
//! <svg xmlns="http://www.w3.org/2000/svg" class="dag" viewBox="0 0 W H" width="W" height="H"
//!      role="img" aria-label="job graph">
//!   <defs><marker id="dag-arrow" …><path …/></marker></defs>
//!   <g class="edges">
//!     <path class="edge" data-from="I" data-to="J" d="M … C …" marker-end="url(#dag-arrow)"/>
//!   </g>
//!   <g class="nodes">
//!     <g class="node" data-job="NAME" data-state="STATE" id="job-N" tabindex="0">
//!       <title>NAME (STATE)</title>
//!       <rect rx="6" x="…" y="…" width="180" height="36"/>
//!       <text x="…" y="…" dy="0.35em">LABEL</text>
//!     </g>
//!   </g>
//! </svg>
//! ```
//!
//! - `N`, `I` and `J` are indexes into the `nodes` slice; an edge goes from the need `I` to
//!   the job `J` that needs it.
//! - `STATE` is [`JobState::as_str`]: `pending`, `queued`, `running`, `succeeded`, `failed`,
//!   `timed_out`, `cancelled` or `skipped`.
//! - `NAME` is the job's full name; `LABEL` is the name cut to [`LABEL_CHARS`] characters with
//!   an ellipsis. Everything written is XML-escaped (`& < > " '`); control characters that
//!   XML cannot carry become U+FFFD.
//! - No colour is written inline: [`DAG_CSS`] colours nodes by `data-state`, so a script
//!   recolours a node with `el.setAttribute("data-state", "failed")` (find it by `id` or by
//!   `data-job`); it may update the `<title>` text too, which names the state at render time.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::state::JobState;

/// Width of a job's box, in px.
pub const NODE_WIDTH: f64 = 180.0;
/// Height of a job's box, in px.
pub const NODE_HEIGHT: f64 = 36.0;
/// Longest label shown in a box, in characters; longer names end with `…`.
pub const LABEL_CHARS: usize = 24;

/// Horizontal gap between layers (room for the edges).
const LAYER_GAP: f64 = 72.0;
/// Vertical gap between the boxes of a layer.
const ROW_GAP: f64 = 16.0;
/// Blank border around the drawing.
const MARGIN: f64 = 16.0;
/// Ordering sweeps (alternately rightwards and leftwards).
const SWEEPS: usize = 8;

/// The stylesheet the drawing expects: the colours of the states in light and dark mode,
/// with a second cue besides colour (stroke width and dashes, struck-through or faded
/// text, a moving dash for running jobs). Scoped to `.dag`.
pub const DAG_CSS: &str = r#".dag { font: 11px/1 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.dag .edge { fill: none; stroke: #8c959f; stroke-width: 1.5; }
.dag marker path { fill: #8c959f; }
.dag .node { cursor: default; }
.dag .node rect { fill: #f6f8fa; stroke: #57606a; stroke-width: 1.5; }
.dag .node text { fill: #1f2328; }
.dag .node:hover rect, .dag .node:focus rect { stroke-width: 3; }
.dag .node:focus { outline: none; }
.dag .node:focus-visible rect { stroke: #0969da; }
.dag .node[data-state="pending"] rect { fill: #ffffff; stroke: #8c959f; stroke-dasharray: 2 3; }
.dag .node[data-state="queued"] rect { fill: #ddf4ff; stroke: #0969da; stroke-dasharray: 6 3; }
.dag .node[data-state="running"] rect { fill: #fff8c5; stroke: #9a6700; stroke-width: 2.5; stroke-dasharray: 8 4; animation: dag-running 1s linear infinite; }
.dag .node[data-state="succeeded"] rect { fill: #dafbe1; stroke: #1a7f37; }
.dag .node[data-state="failed"] rect { fill: #ffebe9; stroke: #cf222e; stroke-width: 3; }
.dag .node[data-state="failed"] text { font-weight: bold; }
.dag .node[data-state="timed_out"] rect { fill: #fff1e5; stroke: #bc4c00; stroke-width: 3; stroke-dasharray: 10 3 2 3; }
.dag .node[data-state="timed_out"] text { font-weight: bold; }
.dag .node[data-state="cancelled"] rect { fill: #eaeef2; stroke: #57606a; stroke-width: 2; }
.dag .node[data-state="cancelled"] text { text-decoration: line-through; }
.dag .node[data-state="skipped"] rect { fill: #ffffff; stroke: #8c959f; stroke-dasharray: 1 3; }
.dag .node[data-state="skipped"] text { fill: #59636e; font-style: italic; }
@keyframes dag-running { to { stroke-dashoffset: -24; } }
@media (prefers-reduced-motion: reduce) { .dag .node[data-state="running"] rect { animation: none; } }
@media (prefers-color-scheme: dark) {
  .dag .edge { stroke: #6e7681; }
  .dag marker path { fill: #6e7681; }
  .dag .node rect { fill: #161b22; stroke: #8b949e; }
  .dag .node text { fill: #e6edf3; }
  .dag .node:focus-visible rect { stroke: #58a6ff; }
  .dag .node[data-state="pending"] rect { fill: #0d1117; stroke: #6e7681; }
  .dag .node[data-state="queued"] rect { fill: #0c2d6b; stroke: #58a6ff; }
  .dag .node[data-state="running"] rect { fill: #3b2e00; stroke: #d29922; }
  .dag .node[data-state="succeeded"] rect { fill: #033a16; stroke: #3fb950; }
  .dag .node[data-state="failed"] rect { fill: #5d0f12; stroke: #f85149; }
  .dag .node[data-state="timed_out"] rect { fill: #4a1f00; stroke: #f0883e; }
  .dag .node[data-state="cancelled"] rect { fill: #21262d; stroke: #8b949e; }
  .dag .node[data-state="skipped"] rect { fill: #0d1117; stroke: #6e7681; }
  .dag .node[data-state="skipped"] text { fill: #8b949e; }
}
"#;

/// One job of the run as the drawing needs it.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The job's full name (`build`, `test[os=linux,py=3.12]`, `deploy/build`). Should two
    /// jobs share a name, needs naming it mean the first.
    pub name: &'a str,
    /// The full names of the jobs it needs; names not in the list are ignored.
    pub needs: &'a [String],
    /// Its state, which colours its box.
    pub state: JobState,
}

/// One arrow of the drawing, from a need to the job that needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Index (into the nodes) of the job needed.
    pub from: usize,
    /// Index of the job that needs it.
    pub to: usize,
    /// The cubic Bézier curve: start, first control point, second control point, end.
    pub curve: [(f64, f64); 4],
}

/// Where each node sits: layered, left to right. Indexes are into the nodes given to
/// [`layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The layer (column) of each node, 0 for the leftmost.
    pub layer: Vec<usize>,
    /// The nodes of each layer, top to bottom.
    pub layers: Vec<Vec<usize>>,
    /// The top-left corner of each node's box.
    pub position: Vec<(f64, f64)>,
    /// Width of the whole drawing.
    pub width: f64,
    /// Height of the whole drawing.
    pub height: f64,
    /// The edges, one for each distinct need found (a job needing itself has none).
    pub edges: Vec<Edge>,
}

/// Lays out `nodes` (see the module doc for the algorithm).
#[must_use]
pub fn layout(nodes: &[Node<'_>]) -> Layout {
    let n = nodes.len();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, node) in nodes.iter().enumerate() {
        index.entry(node.name).or_insert(i);
    }
    let needs: Vec<Vec<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut list: Vec<usize> = node
                .needs
                .iter()
                .filter_map(|need| index.get(need.as_str()).copied())
                .filter(|&need| need != i)
                .collect();
            list.sort_unstable();
            list.dedup();
            list
        })
        .collect();

    // Keep the needs placed before the job: all of them unless there is a cycle.
    let order = order_breaking_cycles(&needs);
    let mut place = vec![0; n];
    for (p, &job) in order.iter().enumerate() {
        place[job] = p;
    }
    let kept: Vec<Vec<usize>> = needs
        .iter()
        .enumerate()
        .map(|(job, list)| {
            list.iter()
                .copied()
                .filter(|&need| place[need] < place[job])
                .collect()
        })
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (job, list) in kept.iter().enumerate() {
        for &need in list {
            dependents[need].push(job);
        }
    }

    let layer = crate::spec::dag::levels(&kept, &order);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); layer.iter().max().map_or(0, |&l| l + 1)];
    for (job, &l) in layer.iter().enumerate() {
        layers[l].push(job);
    }
    order_layers(&mut layers, &layer, &kept, &dependents);

    let tallest = layers.iter().map(Vec::len).max().unwrap_or(0);
    let pitch = NODE_HEIGHT + ROW_GAP;
    let mut position = vec![(0.0, 0.0); n];
    for (l, column) in layers.iter().enumerate() {
        let x = MARGIN + l as f64 * (NODE_WIDTH + LAYER_GAP);
        let top = MARGIN + (tallest - column.len()) as f64 * pitch / 2.0;
        for (row, &job) in column.iter().enumerate() {
            position[job] = (x, top + row as f64 * pitch);
        }
    }
    let width =
        2.0 * MARGIN + (layers.len() as f64 * (NODE_WIDTH + LAYER_GAP) - LAYER_GAP).max(0.0);
    let height = 2.0 * MARGIN + (tallest as f64 * pitch - ROW_GAP).max(0.0);

    let edges = needs
        .iter()
        .enumerate()
        .flat_map(|(to, list)| list.iter().map(move |&from| (from, to)))
        .map(|(from, to)| {
            let (x1, y1) = position[from];
            let (x2, y2) = position[to];
            let start = (x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2.0);
            let end = (x2, y2 + NODE_HEIGHT / 2.0);
            let pull = ((end.0 - start.0).abs() / 2.0).max(LAYER_GAP / 2.0);
            Edge {
                from,
                to,
                curve: [start, (start.0 + pull, start.1), (end.0 - pull, end.1), end],
            }
        })
        .collect();

    Layout {
        layer,
        layers,
        position,
        width,
        height,
        edges,
    }
}

/// Draws `nodes` as laid out by [`layout`] (see the module doc for the SVG contract). A
/// layout made for other nodes does not panic: missing positions are the origin and edges
/// naming missing nodes are left out.
#[must_use]
pub fn svg(nodes: &[Node<'_>], layout: &Layout) -> String {
    let mut out = String::with_capacity(512 + nodes.len() * 320 + layout.edges.len() * 150);
    let (w, h) = (layout.width, layout.height);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" viewBox=\"0 0 {w} {h}\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"job graph\">\n\
         <defs><marker id=\"dag-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">\
         <path d=\"M0 0L10 5L0 10z\"/></marker></defs>\n<g class=\"edges\">\n"
    );
    for edge in &layout.edges {
        if edge.from >= nodes.len() || edge.to >= nodes.len() {
            continue;
        }
        let [(x1, y1), (c1x, c1y), (c2x, c2y), (x2, y2)] = edge.curve;
        let _ = writeln!(
            out,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" \
             d=\"M{x1} {y1}C{c1x} {c1y} {c2x} {c2y} {x2} {y2}\" marker-end=\"url(#dag-arrow)\"/>",
            edge.from, edge.to
        );
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = layout.position.get(i).copied().unwrap_or((0.0, 0.0));
        let state = node.state.as_str();
        out.push_str("<g class=\"node\" data-job=\"");
        escape_into(&mut out, node.name);
        let _ = write!(
            out,
            "\" data-state=\"{state}\" id=\"job-{i}\" tabindex=\"0\"><title>"
        );
        escape_into(&mut out, node.name);
        let _ = write!(
            out,
            " ({state})</title><rect rx=\"6\" x=\"{x}\" y=\"{y}\" width=\"{NODE_WIDTH}\" \
             height=\"{NODE_HEIGHT}\"/><text x=\"{}\" y=\"{}\" dy=\"0.35em\">",
            x + 10.0,
            y + NODE_HEIGHT / 2.0
        );
        if node.name.chars().count() > LABEL_CHARS {
            let cut: String = node.name.chars().take(LABEL_CHARS - 1).collect();
            escape_into(&mut out, &cut);
            out.push('…');
        } else {
            escape_into(&mut out, node.name);
        }
        out.push_str("</text></g>\n");
    }
    out.push_str("</g>\n</svg>\n");
    out
}

/// [`layout`] then [`svg`].
#[must_use]
pub fn draw(nodes: &[Node<'_>]) -> String {
    svg(nodes, &layout(nodes))
}

/// Appends `text` escaped for XML text and attribute values; characters XML 1.0 cannot
/// carry at all become U+FFFD.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
}

/// A topological order of `needs` (Kahn's algorithm); when a cycle blocks it, the earliest
/// job not yet placed is placed anyway, which drops its needs on jobs placed after it.
fn order_breaking_cycles(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut remaining: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (job, list) in needs.iter().enumerate() {
        for &need in list {
            dependents[need].push(job);
        }
    }
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut ready: Vec<usize> = (0..n).rev().filter(|&i| remaining[i] == 0).collect();
    let mut next_unplaced = 0;
    while order.len() < n {
        let job = match ready.pop() {
            Some(job) => job,
            None => {
                // A cycle: every job left waits for another one left.
                while placed[next_unplaced] {
                    next_unplaced += 1;
                }
                next_unplaced
            }
        };
        if placed[job] {
            continue;
        }
        placed[job] = true;
        order.push(job);
        for &dependent in &dependents[job] {
            remaining[dependent] = remaining[dependent].saturating_sub(1);
            if remaining[dependent] == 0 && !placed[dependent] {
                ready.push(dependent);
            }
        }
    }
    order
}

/// Orders each layer by barycenter sweeps, keeping the best order seen.
fn order_layers(
    layers: &mut [Vec<usize>],
    layer: &[usize],
    needs: &[Vec<usize>],
    dependents: &[Vec<usize>],
) {
    let tallest = layers.iter().map(Vec::len).max().unwrap_or(0);
    let mut rank = vec![0; layer.len()];
    for column in layers.iter() {
        for (r, &job) in column.iter().enumerate() {
            rank[job] = r;
        }
    }
    let mut best = layers.to_vec();
    let mut best_crossings = crossings(layers, layer, &rank, dependents);
    let mut keyed: Vec<(f64, usize)> = Vec::new();
    for sweep in 0..SWEEPS {
        if best_crossings == 0 {
            break;
        }
        let rightwards = sweep % 2 == 0;
        let count = layers.len();
        for step in 0..count {
            let (l, neighbours) = if rightwards {
                (step, needs)
            } else {
                (count - 1 - step, dependents)
            };
            // Centre height (in rows) of a node, as drawn: layers are centred vertically.
            let height =
                |job: usize| (tallest - layers[layer[job]].len()) as f64 / 2.0 + rank[job] as f64;
            keyed.clear();
            keyed.extend(layers[l].iter().map(|&job| {
                let near = &neighbours[job];
                let key = if near.is_empty() {
                    height(job)
                } else {
                    near.iter().map(|&other| height(other)).sum::<f64>() / near.len() as f64
                };
                (key, job)
            }));
            // Stable: ties keep the current order.
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (r, &(_, job)) in keyed.iter().enumerate() {
                layers[l][r] = job;
                rank[job] = r;
            }
        }
        let now = crossings(layers, layer, &rank, dependents);
        if now < best_crossings {
            best_crossings = now;
            best.clone_from_slice(layers);
        }
    }
    layers.clone_from_slice(&best);
}

/// The number of crossings between edges joining adjacent layers: for each pair of layers,
/// the inversions of the edges' lower ends once sorted by their upper ends.
fn crossings(
    layers: &[Vec<usize>],
    layer: &[usize],
    rank: &[usize],
    dependents: &[Vec<usize>],
) -> usize {
    let mut total = 0;
    let mut ends: Vec<(usize, usize)> = Vec::new();
    let mut tree: Vec<usize> = Vec::new();
    for (l, pair) in layers.windows(2).enumerate() {
        ends.clear();
        for &job in &pair[0] {
            for &dependent in &dependents[job] {
                if layer[dependent] == l + 1 {
                    ends.push((rank[job], rank[dependent]));
                }
            }
        }
        ends.sort_unstable();
        // A Fenwick tree over the ranks of the next layer, counting the ends seen so far.
        tree.clear();
        tree.resize(pair[1].len() + 1, 0);
        for (seen, &(_, end)) in ends.iter().enumerate() {
            let mut at_most = 0;
            let mut i = end + 1;
            while i > 0 {
                at_most += tree[i];
                i &= i - 1;
            }
            total += seen - at_most;
            let mut i = end + 1;
            while i < tree.len() {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and needs owned by the test, borrowed by the nodes.
    fn jobs(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(name, needs)| {
                (
                    (*name).to_owned(),
                    needs.iter().map(|s| (*s).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn nodes(jobs: &[(String, Vec<String>)]) -> Vec<Node<'_>> {
        jobs.iter()
            .map(|(name, needs)| Node {
                name,
                needs,
                state: JobState::Succeeded,
            })
            .collect()
    }

    /// A cheap well-formedness check: tags nest and close, attribute quotes pair up, `&`
    /// starts one of the entities written, and `<` or `>` never appear raw in text.
    fn assert_well_formed(svg: &str) {
        let mut open: Vec<&str> = Vec::new();
        let mut pieces = svg.split('<');
        assert_eq!(pieces.next(), Some(""), "text before the root");
        for piece in pieces {
            let (tag, text) = piece.split_once('>').expect("unclosed tag");
            assert!(!text.contains('>'), "raw > in text: {text:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unpaired quote in <{tag}>");
            for part in tag.split('&').skip(1).chain(text.split('&').skip(1)) {
                assert!(
                    ["amp;", "lt;", "gt;", "quot;", "#39;"]
                        .iter()
                        .any(|e| part.starts_with(e)),
                    "raw & in {part:?}"
                );
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split([' ', '\n']).next().unwrap_or_default();
                open.push(name);
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    }

    /// Every kept need sits in an earlier layer than its job.
    fn assert_layered(layout: &Layout, n: usize) {
        assert_eq!(layout.layer.len(), n);
        assert_eq!(layout.layers.iter().map(Vec::len).sum::<usize>(), n);
        for (l, column) in layout.layers.iter().enumerate() {
            for &job in column {
                assert_eq!(layout.layer[job], l);
            }
        }
    }

    #[test]
    fn a_diamond_has_three_layers() {
        let owned = jobs(&[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])]);
        let nodes = nodes(&owned);
        let layout = layout(&nodes);
        assert_eq!(layout.layer, vec![0, 1, 1, 2]);
        assert_eq!(layout.layers, vec![vec![0], vec![1, 2], vec![3]]);
        assert_eq!(layout.edges.len(), 4);
        // b and c share x; d is one layer to the right.
        assert_eq!(layout.position[1].0, layout.position[2].0);
        assert_eq!(
            layout.position[3].0 - layout.position[1].0,
            NODE_WIDTH + LAYER_GAP
        );
        // An edge leaves its need's right middle and reaches its job's left middle.
        let edge = layout
            .edges
            .iter()
            .find(|e| e.from == 0 && e.to == 1)
            .unwrap();
        let (ax, ay) = layout.position[0];
        let (bx, by) = layout.position[1];
        assert_eq!(edge.curve[0], (ax + NODE_WIDTH, ay + NODE_HEIGHT / 2.0));
        assert_eq!(edge.curve[3], (bx, by + NODE_HEIGHT / 2.0));
        let svg = svg(&nodes, &layout);
        assert_well_formed(&svg);
        assert!(svg.starts_with(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" viewBox=\"0 0 {w} {h}\" \
             width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"job graph\">",
            w = layout.width,
            h = layout.height
        )));
        assert!(svg.contains(
            "<g class=\"node\" data-job=\"d\" data-state=\"succeeded\" id=\"job-3\" tabindex=\"0\"><title>d (succeeded)</title><rect rx=\"6\" "
        ));
        assert!(svg.contains("<path class=\"edge\" data-from=\"1\" data-to=\"3\" d=\"M"));
        assert!(!svg.contains("fill="), "colours come from CSS only");
    }

    #[test]
    fn barycenter_sweeps_untangle_crossings() {
        // Declared so that the second layer starts fully crossed: x needs c, y b, z a.
        let owned = jobs(&[
            ("a", &[]),
            ("b", &[]),
            ("c", &[]),
            ("x", &["c"]),
            ("y", &["b"]),
            ("z", &["a"]),
        ]);
        let nodes = nodes(&owned);
        let layout = layout(&nodes);
        assert_eq!(layout.layers, vec![vec![0, 1, 2], vec![5, 4, 3]]);
        let mut rank = vec![0; nodes.len()];
        for column in &layout.layers {
            for (r, &job) in column.iter().enumerate() {
                rank[job] = r;
            }
        }
        let dependents = vec![vec![5], vec![4], vec![3], vec![], vec![], vec![]];
        assert_eq!(
            crossings(&layout.layers, &layout.layer, &rank, &dependents),
            0
        );
        let before = [vec![0, 1, 2], vec![3, 4, 5]];
        assert_eq!(
            crossings(&before, &layout.layer, &[0, 1, 2, 0, 1, 2], &dependents),
            3
        );
    }

    #[test]
    fn names_are_escaped_everywhere() {
        let owned = jobs(&[
            ("<script>&\"'", &[]),
            ("test[os=linux,py=3.12]", &["<script>&\"'"]),
            ("deploy/build\u{1}", &["test[os=linux,py=3.12]"]),
        ]);
        let mut nodes = nodes(&owned);
        nodes[0].state = JobState::Failed;
        let svg = draw(&nodes);
        assert_well_formed(&svg);
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("&\""));
        assert!(!svg.contains('\u{1}'));
        assert!(svg.contains("data-job=\"&lt;script&gt;&amp;&quot;&#39;\" data-state=\"failed\""));
        assert!(svg.contains("<title>&lt;script&gt;&amp;&quot;&#39; (failed)</title>"));
        assert!(svg.contains("data-job=\"test[os=linux,py=3.12]\""));
        assert_eq!(svg.matches("class=\"edge\"").count(), 2);
    }

    #[test]
    fn long_names_are_cut_with_an_ellipsis() {
        let long = "a-very-long-job-name-that-goes-on-&-on";
        let owned = jobs(&[(long, &[])]);
        let svg = draw(&nodes(&owned));
        assert_well_formed(&svg);
        assert!(svg.contains("dy=\"0.35em\">a-very-long-job-name-th…</text>"));
        assert!(
            svg.contains("<title>a-very-long-job-name-that-goes-on-&amp;-on (succeeded)</title>")
        );
    }

    #[test]
    fn unknown_and_repeated_needs_are_ignored() {
        let owned = jobs(&[("a", &["nope"]), ("b", &["a", "a", "missing", "b"])]);
        let nodes = nodes(&owned);
        let layout = layout(&nodes);
        assert_eq!(layout.layer, vec![0, 1]);
        assert_eq!(layout.edges.len(), 1);
        assert_eq!((layout.edges[0].from, layout.edges[0].to), (0, 1));
        assert_well_formed(&svg(&nodes, &layout));
    }

    #[test]
    fn a_cycle_is_broken() {
        // a ⇄ b, c needs itself, d needs a, e ⇄ f ⇄ g with g needing d.
        let owned = jobs(&[
            ("a", &["b"]),
            ("b", &["a"]),
            ("c", &["c"]),
            ("d", &["a"]),
            ("e", &["g"]),
            ("f", &["e"]),
            ("g", &["f", "d"]),
        ]);
        let nodes = nodes(&owned);
        let layout = layout(&nodes);
        assert_layered(&layout, nodes.len());
        assert_eq!(layout.layer[0], 0);
        assert_eq!(layout.layer[1], 1);
        assert!(layout.layer[3] > layout.layer[0]);
        // Every edge but the self-need is drawn, backwards or not.
        assert_eq!(layout.edges.len(), 7);
        assert_well_formed(&svg(&nodes, &layout));
    }

    #[test]
    fn nothing_draws_an_empty_svg() {
        let layout = layout(&[]);
        assert!(layout.layers.is_empty());
        let svg = svg(&[], &layout);
        assert_well_formed(&svg);
        assert!(svg.contains("viewBox=\"0 0 32 32\""));
    }

    #[test]
    fn a_thousand_jobs_are_drawn_quickly() {
        const LAYERS: usize = 20;
        const WIDTH: usize = 50;
        let name = |l: usize, i: usize| format!("job-{l}-{i}");
        let owned: Vec<(String, Vec<String>)> = (0..LAYERS)
            .flat_map(|l| (0..WIDTH).map(move |i| (l, i)))
            .map(|(l, i)| {
                let needs = if l == 0 {
                    Vec::new()
                } else {
                    (0..3)
                        .map(|k| name(l - 1, (i * 7 + k * 13) % WIDTH))
                        .collect()
                };
                (name(l, i), needs)
            })
            .collect();
        let mut nodes = nodes(&owned);
        for (i, node) in nodes.iter_mut().enumerate() {
            node.state = JobState::ALL[i % JobState::ALL.len()];
        }

        let started = std::time::Instant::now();
        let layout = layout(&nodes);
        let laid_out = started.elapsed();
        let svg = svg(&nodes, &layout);
        let total = started.elapsed();
        eprintln!(
            "1,000 jobs, {} edges: layout {laid_out:?}, layout + svg {total:?}, {} bytes",
            layout.edges.len(),
            svg.len()
        );

        assert_layered(&layout, LAYERS * WIDTH);
        for (job, &l) in layout.layer.iter().enumerate() {
            assert_eq!(l, job / WIDTH);
        }
        assert_eq!(layout.edges.len(), (LAYERS - 1) * WIDTH * 3);
        assert_eq!(svg.matches("<g class=\"node\"").count(), LAYERS * WIDTH);
        assert_eq!(
            svg.matches("<path class=\"edge\"").count(),
            (LAYERS - 1) * WIDTH * 3
        );
        assert!(svg.contains("id=\"job-999\""));
        assert_well_formed(&svg);
    }
}
