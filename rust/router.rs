//! Which task a request belongs to, for a drafter that serves several: the tasks' training
//! requests in one [`NeighbourIndex`] (each labelled with its task), and a request's task is the
//! one whose requests its prompt holds most of ([`NeighbourIndex::contained`]: the prompt's
//! examples and instructions do not dilute it), its [`VOTERS`] best voting with their scores.
//! A request like none of the chosen task's requests (its best similarity to one of them, over
//! that task's request window, under [`MIN_SCORE`]) has no task: it drafts from its
//! context alone rather than from a wrong task's store.

use std::sync::Arc;

use crate::neighbours::NeighbourIndex;

/// Past requests that vote on a request's task.
pub const VOTERS: usize = 16;
/// Similarity a request's best neighbour must reach for it to have a task.
pub const MIN_SCORE: f32 = 0.15;

/// The tasks' training requests, each labelled with its task (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct TaskRouter {
    index: NeighbourIndex,
    /// Each task's own index (its drafter's pairs), where a routed request's similarity is
    /// checked.
    own: Vec<Option<Arc<NeighbourIndex>>>,
}

/// A routing decision: the task, its share of the voters' similarity, the best similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route {
    pub task: Option<usize>,
    pub share: f32,
    pub best: f32,
}

impl TaskRouter {
    /// A router over each task's training pairs (`tasks[i]`: task `i`'s, `None` for a task
    /// without requests: it is never routed to).
    pub fn build(tasks: &[Option<Arc<NeighbourIndex>>]) -> Self {
        let labels: Vec<[u32; 1]> = (0..tasks.len() as u32).map(|t| [t]).collect();
        let pairs = tasks.iter().zip(&labels).flat_map(|(index, label)| {
            index
                .iter()
                .flat_map(|i| i.pairs())
                .map(move |(r, _)| (r, &label[..]))
        });
        Self {
            index: NeighbourIndex::build(pairs),
            own: tasks.to_vec(),
        }
    }

    /// Tasks routed among.
    pub fn tasks(&self) -> usize {
        self.own.len()
    }

    /// Requests held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The task of `prompt` (its last tokens, as long as the longest request and a margin).
    pub fn route(&self, prompt: &[u32]) -> Route {
        let near = self.index.contained(prompt, VOTERS);
        let mut votes = vec![0.0f32; self.tasks()];
        for &(i, s) in &near {
            if let Some(v) = self
                .index
                .answer(i)
                .first()
                .and_then(|&t| votes.get_mut(t as usize))
            {
                *v += s;
            }
        }
        let total: f32 = votes.iter().sum();
        let top = votes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)));
        let Some((task, &v)) = top.filter(|_| total > 0.0) else {
            return Route {
                task: None,
                share: 0.0,
                best: 0.0,
            };
        };
        // similarity with IDF across the tasks (what tells them apart), over the chosen task's
        // request window, among that task's requests
        let window = self.own[task].as_deref().map_or(0, NeighbourIndex::window);
        let best = self
            .index
            .nearest_within(prompt, VOTERS, window)
            .into_iter()
            .find(|&(i, _)| self.index.answer(i).first() == Some(&(task as u32)))
            .map_or(0.0, |(_, s)| s);
        Route {
            task: (best >= MIN_SCORE).then_some(task),
            share: v / total,
            best,
        }
    }

    /// Bytes held (approximate).
    pub fn bytes(&self) -> usize {
        self.index.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_task_whose_requests_they_resemble() {
        // task 0: "wake me at <n>" (tokens 1 2 3 n), task 1: "table <t> columns <c>" (5 6 7 ...)
        let a: Vec<Vec<u32>> = (0..20).map(|n| vec![1, 2, 3, 100 + n]).collect();
        let b: Vec<Vec<u32>> = (0..20).map(|n| vec![5, 200 + n, 6, 7, 300 + n]).collect();
        let index = |reqs: &[Vec<u32>]| {
            Some(Arc::new(NeighbourIndex::build(
                reqs.iter().map(|r| (r.as_slice(), &[0u32][..])),
            )))
        };
        let router = TaskRouter::build(&[index(&a), index(&b), None]);
        assert_eq!(router.tasks(), 3);
        assert_eq!(router.len(), 40);
        let r = router.route(&[9, 9, 1, 2, 3, 999]);
        assert_eq!(r.task, Some(0));
        assert!(r.share > 0.99 && r.best >= MIN_SCORE);
        assert_eq!(router.route(&[5, 777, 6, 7, 888]).task, Some(1));
        // like nothing either task holds
        let r = router.route(&[40, 41, 42]);
        assert_eq!(r.task, None);
        assert_eq!(r.best, 0.0);
        assert_eq!(TaskRouter::build(&[]).route(&[1, 2]).task, None);
        assert_eq!(TaskRouter::build(&[None]).route(&[1, 2]).task, None);
    }
}
