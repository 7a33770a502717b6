//! The job/resource graph as Concourse's pipeline view draws it: jobs as boxes, resources as
//! inputs and outputs, `passed:` edges between jobs; trigger edges solid, others dashed.
//! Rendered as DOT (for Graphviz users) or as SVG laid out here (no Graphviz needed).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::model::{Pipeline, StepKind};

/// A node of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeId {
    /// A job.
    Job(String),
    /// A resource.
    Resource(String),
}

impl NodeId {
    /// The DOT node id (`job:NAME` or `resource:NAME`).
    pub fn dot_id(&self) -> String {
        match self {
            NodeId::Job(n) => format!("job:{n}"),
            NodeId::Resource(n) => format!("resource:{n}"),
        }
    }

    fn name(&self) -> &str {
        match self {
            NodeId::Job(n) | NodeId::Resource(n) => n,
        }
    }
}

/// An edge: a resource feeding a job, a job passing a resource on, or a job putting a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Where it starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// The resource that flows along a job-to-job (`passed:`) edge.
    pub label: Option<String>,
    /// Whether new versions trigger the downstream job (drawn solid).
    pub trigger: bool,
}

/// The pipeline's graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Nodes in pipeline order: jobs, then the resources that appear in edges.
    pub nodes: Vec<NodeId>,
    /// Edges without duplicates.
    pub edges: Vec<Edge>,
}

/// Builds the graph of `pipeline`.
pub fn build(pipeline: &Pipeline) -> Graph {
    let mut edges: Vec<Edge> = Vec::new();
    let mut add = |edge: Edge| match edges
        .iter_mut()
        .find(|e| e.from == edge.from && e.to == edge.to && e.label == edge.label)
    {
        Some(existing) => existing.trigger |= edge.trigger,
        None => edges.push(edge),
    };
    for job in &pipeline.jobs {
        let me = NodeId::Job(job.name.clone());
        job.walk_steps(&mut |step| match &step.kind {
            StepKind::Get(g) if g.passed.is_empty() => add(Edge {
                from: NodeId::Resource(g.resource_name().to_string()),
                to: me.clone(),
                label: None,
                trigger: g.trigger,
            }),
            StepKind::Get(g) => {
                for up in &g.passed {
                    add(Edge {
                        from: NodeId::Job(up.clone()),
                        to: me.clone(),
                        label: Some(g.resource_name().to_string()),
                        trigger: g.trigger,
                    });
                }
            }
            StepKind::Put(p) => add(Edge {
                from: me.clone(),
                to: NodeId::Resource(p.resource_name().to_string()),
                label: None,
                trigger: true,
            }),
            _ => {}
        });
    }
    let mut nodes: Vec<NodeId> = pipeline
        .jobs
        .iter()
        .map(|j| NodeId::Job(j.name.clone()))
        .collect();
    for r in &pipeline.resources {
        let id = NodeId::Resource(r.name.clone());
        if edges.iter().any(|e| e.from == id || e.to == id) {
            nodes.push(id);
        }
    }
    Graph { nodes, edges }
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The graph in Graphviz DOT.
pub fn to_dot(graph: &Graph) -> String {
    let mut out =
        String::from("digraph pipeline {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n");
    for node in &graph.nodes {
        let shape = match node {
            NodeId::Job(_) => "shape=box",
            NodeId::Resource(_) => "shape=box, style=rounded",
        };
        let _ = writeln!(
            out,
            "  {} [label={}, {shape}];",
            dot_quote(&node.dot_id()),
            dot_quote(node.name())
        );
    }
    for edge in &graph.edges {
        let style = if edge.trigger { "solid" } else { "dashed" };
        let label = edge
            .label
            .as_deref()
            .map(|l| format!("label={}, ", dot_quote(l)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} -> {} [{label}style={style}];",
            dot_quote(&edge.from.dot_id()),
            dot_quote(&edge.to.dot_id())
        );
    }
    out.push_str("}\n");
    out
}

const NODE_W: usize = 180;
const NODE_H: usize = 34;
const COL_W: usize = 240;
const ROW_H: usize = 56;
const MARGIN: usize = 20;

/// Column of every node: jobs after their `passed:` upstreams, resources just before the first
/// job that gets them directly, or just after the jobs that only put them.
fn columns(graph: &Graph) -> HashMap<&NodeId, usize> {
    let mut cols: HashMap<&NodeId, usize> = HashMap::new();
    let jobs: Vec<&NodeId> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n, NodeId::Job(_)))
        .collect();
    for job in &jobs {
        cols.insert(job, 1);
    }
    // Longest path over passed edges; bounded by the number of jobs so cycles cannot loop.
    for _ in 0..jobs.len() {
        let mut changed = false;
        for e in graph
            .edges
            .iter()
            .filter(|e| matches!((&e.from, &e.to), (NodeId::Job(_), NodeId::Job(_))))
        {
            let from = cols.get(&e.from).copied().unwrap_or(1);
            let to = cols.get(&e.to).copied().unwrap_or(1);
            if to < from + 2 && from + 2 <= 2 * jobs.len() + 1 {
                cols.insert(&e.to, from + 2);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for node in graph
        .nodes
        .iter()
        .filter(|n| matches!(n, NodeId::Resource(_)))
    {
        let consumers = graph
            .edges
            .iter()
            .filter(|e| &e.from == node)
            .filter_map(|e| cols.get(&e.to));
        let col = match consumers.min() {
            Some(c) => c - 1,
            None => graph
                .edges
                .iter()
                .filter(|e| &e.to == node)
                .filter_map(|e| cols.get(&e.from))
                .max()
                .map_or(0, |c| c + 1),
        };
        cols.insert(node, col);
    }
    cols
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The graph as a standalone SVG document.
pub fn to_svg(graph: &Graph) -> String {
    let cols = columns(graph);
    let mut rows_used: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pos: HashMap<&NodeId, (usize, usize)> = HashMap::new();
    for node in &graph.nodes {
        let col = cols.get(node).copied().unwrap_or(0);
        let row = rows_used.entry(col).or_insert(0);
        pos.insert(node, (MARGIN + col * COL_W / 2, MARGIN + *row * ROW_H));
        *row += 1;
    }
    let width = pos
        .values()
        .map(|(x, _)| x + NODE_W + MARGIN)
        .max()
        .unwrap_or(2 * MARGIN);
    let height = pos
        .values()
        .map(|(_, y)| y + NODE_H + MARGIN)
        .max()
        .unwrap_or(2 * MARGIN);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\">"
    );
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n");
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#273747\"/>\n");
    for edge in &graph.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(&edge.from), pos.get(&edge.to)) else {
            continue;
        };
        let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2);
        let (ex, ey) = (x2, y2 + NODE_H / 2);
        let bend = 60;
        let dash = if edge.trigger {
            ""
        } else {
            " stroke-dasharray=\"6,4\""
        };
        let _ = writeln!(
            out,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M {sx} {sy} C {} {sy}, {} {ey}, {ex} {ey}\" fill=\"none\" stroke=\"#9aa5b1\" stroke-width=\"2\"{dash} marker-end=\"url(#arrow)\"/>",
            xml_escape(&edge.from.dot_id()),
            xml_escape(&edge.to.dot_id()),
            sx + bend,
            ex.saturating_sub(bend),
        );
    }
    for node in &graph.nodes {
        let Some(&(x, y)) = pos.get(node) else {
            continue;
        };
        let (fill, rx) = match node {
            NodeId::Job(_) => ("#4a5b6c", 0),
            NodeId::Resource(_) => ("#1d2731", 8),
        };
        let _ = writeln!(
            out,
            "<g class=\"{}\"><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"#9aa5b1\"/><text x=\"{}\" y=\"{}\" fill=\"#ffffff\" text-anchor=\"middle\">{}</text></g>",
            match node {
                NodeId::Job(_) => "job",
                NodeId::Resource(_) => "resource",
            },
            x + NODE_W / 2,
            y + NODE_H / 2 + 5,
            xml_escape(node.name()),
        );
    }
    out.push_str("</svg>\n");
    out
}
