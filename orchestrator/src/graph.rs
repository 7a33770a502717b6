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
    let mut seen: HashMap<(NodeId, NodeId, Option<String>), usize> = HashMap::new();
    let mut add = |edge: Edge| {
        let key = (edge.from.clone(), edge.to.clone(), edge.label.clone());
        match seen.get(&key) {
            Some(&i) => edges[i].trigger |= edge.trigger,
            None => {
                seen.insert(key, edges.len());
                edges.push(edge);
            }
        }
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
    let linked: std::collections::HashSet<&NodeId> =
        edges.iter().flat_map(|e| [&e.from, &e.to]).collect();
    let resources: Vec<NodeId> = pipeline
        .resources
        .iter()
        .map(|r| NodeId::Resource(r.name.clone()))
        .filter(|id| linked.contains(id))
        .collect();
    nodes.extend(resources);
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

/// Column of every node: the longest path to it over the graph's edges (back edges of cycles,
/// such as a job putting a resource it also gets, are ignored), with resources that nothing
/// produces moved right next to their first consumer.
fn columns(graph: &Graph) -> HashMap<&NodeId, usize> {
    let index: HashMap<&NodeId, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let n = graph.nodes.len();
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &graph.edges {
        if let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) {
            out_edges[a].push(b);
        }
    }
    // Iterative DFS: keep edges to nodes not on the current path (drops back edges).
    let mut dag: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut state = vec![0u8; n]; // 0 new, 1 on path, 2 done
    // Start from resources so that inputs come first and a job's put back into its own input
    // is the edge that gets dropped.
    let roots = (0..n)
        .filter(|&i| matches!(graph.nodes[i], NodeId::Resource(_)))
        .chain((0..n).filter(|&i| matches!(graph.nodes[i], NodeId::Job(_))));
    for root in roots {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some((node, next)) = stack.last().copied() {
            if let Some(&to) = out_edges[node].get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                if state[to] != 1 {
                    dag[node].push(to);
                }
                if state[to] == 0 {
                    state[to] = 1;
                    stack.push((to, 0));
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    // Longest path in topological order (Kahn).
    let mut indegree = vec![0usize; n];
    for targets in &dag {
        for &t in targets {
            indegree[t] += 1;
        }
    }
    let mut rank = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(node) = ready.pop() {
        for &t in &dag[node] {
            rank[t] = rank[t].max(rank[node] + 1);
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push(t);
            }
        }
    }
    let produced_set: std::collections::HashSet<&NodeId> =
        graph.edges.iter().map(|e| &e.to).collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        let produced = produced_set.contains(node);
        if matches!(node, NodeId::Resource(_))
            && !produced
            && let Some(first) = dag[i].iter().map(|&t| rank[t]).min()
        {
            rank[i] = first.saturating_sub(1);
        }
    }
    graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node, rank[i]))
        .collect()
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
        pos.insert(node, (MARGIN + col * COL_W, MARGIN + *row * ROW_H));
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
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#9aa5b1\"/></marker></defs>\n");
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#273747\"/>\n");
    for edge in &graph.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(&edge.from), pos.get(&edge.to)) else {
            continue;
        };
        let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2);
        let (ex, ey) = (x2, y2 + NODE_H / 2);
        let bend = (COL_W - NODE_W) / 2;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::StaticVars;

    fn layout(text: &str) -> Vec<(String, usize)> {
        let loaded = crate::load::load_str(text, "p.yml", &StaticVars::default());
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let graph = build(&loaded.pipeline);
        let cols = columns(&graph);
        graph.nodes.iter().map(|n| (n.dot_id(), cols[n])).collect()
    }

    #[test]
    fn columns_follow_the_flow() {
        let text = "resources:
- {name: src, type: git}
- {name: img, type: registry-image}
- {name: late, type: git}
jobs:
- name: build
  plan: [{get: src, trigger: true}, {put: img}]
- name: test
  plan: [{get: img, passed: [build], trigger: true}, {get: late}, {put: src}]
- name: ship
  plan: [{get: img, passed: [test]}]
";
        let got = layout(text);
        let want = [
            ("job:build", 1),
            ("job:test", 2),
            ("job:ship", 3),
            ("resource:src", 0),
            ("resource:img", 2),
            ("resource:late", 1),
        ];
        let want: Vec<(String, usize)> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dot_quotes_names() {
        let graph = Graph {
            nodes: vec![NodeId::Job("a \"b\"".into())],
            edges: vec![],
        };
        assert!(to_dot(&graph).contains(r#""job:a \"b\"" [label="a \"b\"", shape=box];"#));
    }
}
