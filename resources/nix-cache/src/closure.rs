//! Closure ordering: dependencies first (for `closure` files) and in upload levels (a narinfo
//! is published only after the narinfos of everything it references).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::narinfo::NarInfo;
use crate::store_path::StorePath;

/// Every path reachable from `roots` through `infos`, dependencies before dependents, ties in
/// path order. References missing from `infos` are skipped (callers check completeness).
pub fn dependencies_first(
    infos: &BTreeMap<StorePath, NarInfo>,
    roots: &[StorePath],
) -> Vec<StorePath> {
    let mut order = Vec::new();
    let mut done: BTreeSet<&StorePath> = BTreeSet::new();
    let mut sorted_roots: Vec<&StorePath> = roots.iter().collect();
    sorted_roots.sort();
    for root in sorted_roots {
        if done.contains(root) || !infos.contains_key(root) {
            continue;
        }
        // Iterative post-order DFS: (node, next child index).
        let mut stack: Vec<(&StorePath, usize)> = vec![(root, 0)];
        let mut on_stack: BTreeSet<&StorePath> = BTreeSet::from([root]);
        while let Some((node, index)) = stack.pop() {
            let deps: Vec<&StorePath> = infos
                .get(node)
                .map(|i| {
                    i.dependencies()
                        .filter(|d| infos.contains_key(*d))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(next) = deps.get(index) {
                stack.push((node, index + 1));
                if !done.contains(next) && !on_stack.contains(next) {
                    on_stack.insert(next);
                    stack.push((next, 0));
                }
            } else {
                on_stack.remove(node);
                if done.insert(node) {
                    order.push(node.clone());
                }
            }
        }
    }
    order
}

/// Groups `paths` (in dependencies-first order) into levels: every path's references within
/// `paths` are in earlier levels.
pub fn upload_levels(
    infos: &BTreeMap<StorePath, NarInfo>,
    paths: &[StorePath],
) -> Vec<Vec<StorePath>> {
    let mut level: HashMap<&StorePath, usize> = HashMap::new();
    let mut levels: Vec<Vec<StorePath>> = Vec::new();
    for path in paths {
        let l = infos
            .get(path)
            .map(|i| {
                i.dependencies()
                    .filter_map(|d| level.get(d).map(|l| l + 1))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        level.insert(path, l);
        if levels.len() <= l {
            levels.resize_with(l + 1, Vec::new);
        }
        levels[l].push(path.clone());
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Sha256Hash;
    use crate::narinfo::Compression;

    fn sp(c: char, name: &str) -> StorePath {
        StorePath::from_base_name(&format!("{}-{name}", c.to_string().repeat(32))).unwrap()
    }

    fn info(path: &StorePath, refs: &[&StorePath]) -> NarInfo {
        NarInfo {
            store_path: path.clone(),
            url: "nar/x.nar".into(),
            compression: Compression::None,
            file_hash: None,
            file_size: None,
            nar_hash: Sha256Hash([0; 32]),
            nar_size: 0,
            references: refs.iter().map(|r| (*r).clone()).collect(),
            deriver: None,
            system: None,
            sigs: vec![],
            ca: None,
        }
    }

    #[test]
    fn orders_dependencies_first_and_levels() {
        let (a, b, c, d) = (sp('a', "a"), sp('b', "b"), sp('c', "c"), sp('d', "d"));
        // a -> b, c; b -> d; c -> d, c (self reference)
        let infos: BTreeMap<_, _> = [
            (a.clone(), info(&a, &[&b, &c])),
            (b.clone(), info(&b, &[&d])),
            (c.clone(), info(&c, &[&c, &d])),
            (d.clone(), info(&d, &[])),
        ]
        .into_iter()
        .collect();
        let order = dependencies_first(&infos, std::slice::from_ref(&a));
        assert_eq!(order, vec![d.clone(), b.clone(), c.clone(), a.clone()]);
        let levels = upload_levels(&infos, &order);
        assert_eq!(
            levels,
            vec![vec![d.clone()], vec![b.clone(), c.clone()], vec![a.clone()]]
        );
        // Only part of the closure to upload: d is already present.
        let levels = upload_levels(&infos, &[b.clone(), a.clone()]);
        assert_eq!(levels, vec![vec![b], vec![a]]);
        assert_eq!(
            dependencies_first(&infos, std::slice::from_ref(&d)),
            vec![d]
        );
    }
}
