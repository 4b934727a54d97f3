//! Directed acyclic graphs over job indexes: cycle finding and topological order.
//!
//! Graphs are adjacency lists of `needs` (`needs[i]` lists the jobs job `i` needs). Both
//! algorithms are iterative so that a chain of 100,000 jobs cannot overflow the stack.

/// Every elementary cycle found by a depth-first search along `needs`, each in `needs`
/// order starting at its earliest job: `[a, b]` means a needs b and b needs a.
#[must_use]
pub fn find_cycles(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    let mut color = vec![Color::White; needs.len()];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    let mut path: Vec<usize> = Vec::new();
    for start in 0..needs.len() {
        if color[start] != Color::White {
            continue;
        }
        // Each frame is a node and the index of the next edge to follow.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = Color::Gray;
        path.push(start);
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = needs[node].get(*edge) {
                *edge += 1;
                match color.get(next).copied() {
                    Some(Color::White) => {
                        color[next] = Color::Gray;
                        path.push(next);
                        stack.push((next, 0));
                    }
                    Some(Color::Gray) => {
                        let at = path
                            .iter()
                            .rposition(|&n| n == next)
                            .expect("gray nodes are on the path");
                        let mut cycle = path[at..].to_vec();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        if !cycles.contains(&cycle) {
                            cycles.push(cycle);
                        }
                    }
                    _ => {}
                }
            } else {
                color[node] = Color::Black;
                path.pop();
                stack.pop();
            }
        }
    }
    cycles
}

/// A topological order (every job after the jobs it needs), stable in declaration order;
/// `None` when there is a cycle.
#[must_use]
pub fn topological_order(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = needs.len();
    let mut remaining: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (job, list) in needs.iter().enumerate() {
        for &need in list {
            dependents.get_mut(need)?.push(job);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
        .filter(|&i| remaining[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse(job)) = ready.pop() {
        order.push(job);
        for &dependent in &dependents[job] {
            remaining[dependent] -= 1;
            if remaining[dependent] == 0 {
                ready.push(std::cmp::Reverse(dependent));
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// The depth of each job: 0 for jobs that need nothing, else one more than its deepest need.
#[must_use]
pub fn levels(needs: &[Vec<usize>], order: &[usize]) -> Vec<usize> {
    let mut level = vec![0; needs.len()];
    for &job in order {
        level[job] = needs[job].iter().map(|&n| level[n] + 1).max().unwrap_or(0);
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_named_in_needs_order() {
        // 0 needs 2, 2 needs 1, 1 needs 0.
        let needs = vec![vec![2], vec![0], vec![1], vec![3]];
        assert_eq!(find_cycles(&needs), vec![vec![0, 2, 1], vec![3]]);
        assert!(topological_order(&needs).is_none());
    }

    #[test]
    fn order_respects_needs_and_declaration() {
        let needs = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert_eq!(topological_order(&needs), Some(vec![0, 1, 2, 3]));
        assert_eq!(levels(&needs, &[0, 1, 2, 3]), vec![0, 1, 1, 2]);
        assert!(find_cycles(&needs).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow() {
        let needs: Vec<Vec<usize>> = (0..200_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(find_cycles(&needs).is_empty());
        assert_eq!(topological_order(&needs).map(|o| o.len()), Some(200_000));
    }
}
