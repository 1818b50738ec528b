//! Fork-join: fib, n-queens and an unbalanced tree search, through runq's
//! `join`/`scope` and rayon's.
//!
//! fib and the tree search are written once over [`Fork`]; n-queens uses
//! each engine's `scope`, whose types differ, so it is written twice over
//! the same board code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::Outcome;
use crate::engine::{Engine, EngineKind};

/// A fork-join primitive: run two closures, potentially in parallel.
pub trait Fork {
    /// Runs `a` and `b` and returns both results.
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
}

/// `runq::join`: inside a runq task, the task's pool.
#[derive(Debug)]
pub struct RunqFork;

impl Fork for RunqFork {
    #[inline]
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        runq::join(a, b)
    }
}

/// `rayon::join`: inside `ThreadPool::install`, that pool.
#[derive(Debug)]
pub struct RayonFork;

impl Fork for RayonFork {
    #[inline]
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        rayon::join(a, b)
    }
}

/// Both closures in a row on the caller: the reference answers.
#[derive(Debug)]
pub struct Serial;

impl Fork for Serial {
    #[inline]
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        (a(), b())
    }
}

/// fib(n), forking at every level.
pub fn fib<F: Fork>(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = F::join(|| fib::<F>(n - 1), || fib::<F>(n - 2));
    a + b
}

fn fib_iterative(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

pub(super) fn fib_run(engine: &Engine, n: u64) -> Outcome {
    let warm = n.saturating_sub(6);
    let (value, elapsed) = match engine.kind() {
        EngineKind::Runq | EngineKind::RunqUnpinned => {
            engine.install(move || fib::<RunqFork>(warm));
            let start = Instant::now();
            (engine.install(move || fib::<RunqFork>(n)), start.elapsed())
        }
        EngineKind::Rayon => {
            engine.install(move || fib::<RayonFork>(warm));
            let start = Instant::now();
            (engine.install(move || fib::<RayonFork>(n)), start.elapsed())
        }
        other => unreachable!("{other} has no fork-join"),
    };
    Outcome::time(elapsed, fib_iterative(n), value)
}

/// A partial n-queens board as bit masks of attacked columns and diagonals.
#[derive(Debug, Clone, Copy)]
struct Board {
    n: u32,
    row: u32,
    cols: u32,
    left: u32,
    right: u32,
}

impl Board {
    fn empty(n: u32) -> Board {
        assert!((1..=16).contains(&n), "n-queens size out of range");
        Board {
            n,
            row: 0,
            cols: 0,
            left: 0,
            right: 0,
        }
    }

    /// The boards with one more queen, one per free square of the next row.
    fn children(self) -> impl Iterator<Item = Board> {
        let full = (1u32 << self.n) - 1;
        let mut free = full & !(self.cols | self.left | self.right);
        std::iter::from_fn(move || {
            if free == 0 {
                return None;
            }
            let bit = free & free.wrapping_neg();
            free &= free - 1;
            Some(Board {
                n: self.n,
                row: self.row + 1,
                cols: self.cols | bit,
                left: ((self.left | bit) << 1) & full,
                right: (self.right | bit) >> 1,
            })
        })
    }

    fn solutions(self) -> u64 {
        if self.row == self.n {
            return 1;
        }
        self.children().map(Board::solutions).sum()
    }
}

/// Rows placed with scoped spawns; the rest of the board is solved in the
/// task that reached it.
const QUEENS_SPAWN_ROWS: u32 = 3;

/// Solutions of n-queens, on the caller alone.
pub fn nqueens_serial(n: u32) -> u64 {
    Board::empty(n).solutions()
}

fn queens_runq<'s>(s: &runq::Scope<'s>, board: Board, count: &'s AtomicU64) {
    if board.row >= QUEENS_SPAWN_ROWS.min(board.n) {
        count.fetch_add(board.solutions(), Ordering::Relaxed);
        return;
    }
    for next in board.children() {
        s.spawn(move |s| queens_runq(s, next, count));
    }
}

fn queens_rayon<'s>(s: &rayon::Scope<'s>, board: Board, count: &'s AtomicU64) {
    if board.row >= QUEENS_SPAWN_ROWS.min(board.n) {
        count.fetch_add(board.solutions(), Ordering::Relaxed);
        return;
    }
    for next in board.children() {
        s.spawn(move |s| queens_rayon(s, next, count));
    }
}

fn nqueens_once(engine: &Engine, n: u32) -> u64 {
    let count = AtomicU64::new(0);
    let board = Board::empty(n);
    if let Some(pool) = engine.runq_pool() {
        pool.scope(|s| queens_runq(s, board, &count));
    } else if let Some(pool) = engine.rayon_pool() {
        pool.scope(|s| queens_rayon(s, board, &count));
    } else {
        unreachable!("{} has no fork-join", engine.kind());
    }
    count.into_inner()
}

/// Known solution counts, n = 0..=13.
const QUEENS_SOLUTIONS: [u64; 14] = [
    1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2_680, 14_200, 73_712,
];

pub(super) fn nqueens_run(engine: &Engine, n: u32) -> Outcome {
    nqueens_once(engine, n.saturating_sub(2).max(4));
    let start = Instant::now();
    let found = nqueens_once(engine, n);
    let expected = QUEENS_SOLUTIONS
        .get(n as usize)
        .copied()
        .unwrap_or_else(|| nqueens_serial(n));
    Outcome::time(start.elapsed(), expected, found)
}

/// Mean fan-out of the tree search's geometric distribution.
const UTS_MEAN_CHILDREN: f64 = 4.0;
/// Mixing rounds per node: the node's own work (UTS hashes each node).
const UTS_NODE_ROUNDS: u32 = 16;
/// Seed of the root: fixed, so the tree is the same in every run.
const UTS_ROOT_SEED: u64 = 0x005E_ED0F_7EE5;

/// A node of the unbalanced tree: its random state and depth.
#[derive(Debug, Clone, Copy)]
pub struct UtsNode {
    state: u64,
    depth: u32,
    max_depth: u32,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl UtsNode {
    /// The root of a tree cut off at `max_depth`.
    pub fn root(max_depth: u32) -> UtsNode {
        UtsNode {
            state: UTS_ROOT_SEED,
            depth: 0,
            max_depth,
        }
    }

    /// Number of children: geometric with mean [`UTS_MEAN_CHILDREN`], none
    /// at the depth limit. Costs [`UTS_NODE_ROUNDS`] rounds of mixing.
    fn fan_out(self) -> u64 {
        if self.depth >= self.max_depth {
            return 0;
        }
        let mut h = self.state;
        for _ in 0..UTS_NODE_ROUNDS {
            h = splitmix(h);
        }
        // Uniform in (0, 1]; inverse transform of the geometric law.
        let u = ((h >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let q = UTS_MEAN_CHILDREN / (1.0 + UTS_MEAN_CHILDREN);
        (u.ln() / q.ln()).floor().min(1_000.0) as u64
    }

    fn child(self, i: u64) -> UtsNode {
        UtsNode {
            state: splitmix(self.state ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03)),
            depth: self.depth + 1,
            max_depth: self.max_depth,
        }
    }
}

/// Nodes in the subtree of `node`, forking over its children.
pub fn uts<F: Fork>(node: UtsNode) -> u64 {
    1 + children::<F>(node, 0, node.fan_out())
}

/// Nodes under children `lo..hi` of `parent`, split in halves.
fn children<F: Fork>(parent: UtsNode, lo: u64, hi: u64) -> u64 {
    match hi - lo {
        0 => 0,
        1 => uts::<F>(parent.child(lo)),
        len => {
            let mid = lo + len / 2;
            let (a, b) = F::join(
                || children::<F>(parent, lo, mid),
                || children::<F>(parent, mid, hi),
            );
            a + b
        }
    }
}

/// Nodes of the tree with depth limit `depth`, counted on the caller
/// (remembered per depth: the answer never changes).
pub fn uts_serial(depth: u32) -> u64 {
    static KNOWN: Mutex<Option<HashMap<u32, u64>>> = Mutex::new(None);
    if let Some(&n) = KNOWN
        .lock()
        .expect("uts cache")
        .get_or_insert_with(HashMap::new)
        .get(&depth)
    {
        return n;
    }
    let n = uts::<Serial>(UtsNode::root(depth));
    KNOWN
        .lock()
        .expect("uts cache")
        .get_or_insert_with(HashMap::new)
        .insert(depth, n);
    n
}

pub(super) fn uts_run(engine: &Engine, depth: u32) -> Outcome {
    let expected = uts_serial(depth);
    let warm = depth.saturating_sub(2);
    let root = UtsNode::root(depth);
    let (found, elapsed) = match engine.kind() {
        EngineKind::Runq | EngineKind::RunqUnpinned => {
            engine.install(move || uts::<RunqFork>(UtsNode::root(warm)));
            let start = Instant::now();
            (
                engine.install(move || uts::<RunqFork>(root)),
                start.elapsed(),
            )
        }
        EngineKind::Rayon => {
            engine.install(move || uts::<RayonFork>(UtsNode::root(warm)));
            let start = Instant::now();
            (
                engine.install(move || uts::<RayonFork>(root)),
                start.elapsed(),
            )
        }
        other => unreachable!("{other} has no fork-join"),
    };
    Outcome::time(elapsed, expected, found)
}
