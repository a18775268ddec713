//! criterion benches for the core: store build throughput, proposal latency, and one engine
//! step of the serving table for a batch.
//!
//! Corpus: synthetic task outputs (templates with slot substitutions over a 49,152-token
//! vocabulary), 1M tokens; contexts: tokens from the same distribution.
//! Run: `cargo bench --bench core` (`-- "engine step"` for the serving benches only; under
//! `valgrind --tool=callgrind` they count instructions repeatably).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tasc_rs::copy::{CopyIndex, CopySource, PromptAnchors};
use tasc_rs::draft::propose_until;
use tasc_rs::neighbours::{NeighbourIndex, NeighbourSource, OnlinePairs};
use tasc_rs::{
    propose, ContextIndex, Corpus, DrafterConfig, Mixing, NgramStore, RequestTable, Row,
    ServingConfig,
};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u32 {
        (self.next() % n) as u32
    }
}

fn task_like(tokens: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng(seed);
    let templates: Vec<Vec<u32>> = (0..300)
        .map(|_| {
            let len = 8 + rng.below(40) as usize;
            (0..len).map(|_| rng.below(49_152)).collect()
        })
        .collect();
    let mut out = Vec::new();
    let mut total = 0;
    while total < tokens {
        let mut seq = templates[rng.below(templates.len() as u64) as usize].clone();
        for t in seq.iter_mut() {
            if rng.below(10) < 2 {
                *t = rng.below(49_152);
            }
        }
        total += seq.len();
        out.push(seq);
    }
    out
}

fn benches(c: &mut Criterion) {
    let seqs = task_like(1_000_000, 17);
    let corpus = Corpus::from_sequences(&seqs, Some(49_152)).unwrap();
    let config = DrafterConfig {
        min_count: 1,
        ..DrafterConfig::default()
    };
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.throughput(Throughput::Elements(corpus.num_tokens() as u64));
    group.bench_function("1M tokens n_max=4 min_count=1", |b| {
        b.iter(|| NgramStore::build(black_box(&corpus), &config).unwrap())
    });
    group.finish();

    let store = NgramStore::build(&corpus, &config).unwrap();
    let context: Vec<u32> = task_like(2_048, 99)
        .concat()
        .into_iter()
        .take(2_048)
        .collect();
    let index = ContextIndex::new(4, &context);
    c.bench_function("propose k=8, 2k context", |b| {
        b.iter(|| propose(&store, black_box(&index), 8, 0.75, 0.0).unwrap())
    });
    c.bench_function("context index 2k tokens", |b| {
        b.iter(|| ContextIndex::new(4, black_box(&context)))
    });
    copy_pointer(c, &seqs);
    neighbours(c, &seqs);
    engine_steps(c, &seqs);
}

/// The copy pointer: building it from 100k (request, answer) pairs, a session's prompt map of
/// a 300-token prompt (its whole per-request cost at open), and a chain drafted with it.
fn copy_pointer(c: &mut Criterion, seqs: &[Vec<u32>]) {
    let mut rng = Rng(5);
    // requests: 40 random tokens, a name after the anchor (1, 2), the rest; answers: the name
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = seqs
        .iter()
        .cycle()
        .take(100_000)
        .map(|answer| {
            let name = [rng.below(49_152), rng.below(49_152)];
            let mut request: Vec<u32> = (0..40).map(|_| rng.below(49_152)).collect();
            request.extend([1, 2, name[0], name[1], 3]);
            let mut a = name.to_vec();
            a.extend_from_slice(answer);
            (request, a)
        })
        .collect();
    let mut group = c.benchmark_group("copy pointer");
    group.sample_size(10);
    group.bench_function(format!("build from {} pairs", pairs.len()), |b| {
        b.iter(|| CopyIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice()))))
    });
    group.finish();
    let copy = CopyIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
    let answers: Vec<Vec<u32>> = pairs.iter().map(|(_, a)| a.clone()).collect();
    let corpus = Corpus::from_sequences(&answers, Some(49_152)).unwrap();
    let config = DrafterConfig {
        min_count: 2,
        ..DrafterConfig::default()
    };
    let store = NgramStore::build(&corpus, &config).unwrap().with_copy(copy);
    let mut prompt: Vec<u32> = (0..295).map(|_| rng.below(49_152)).collect();
    prompt.extend([1, 2, 7, 8, 3]);
    c.bench_function("copy pointer: prompt map, 300 tokens", |b| {
        b.iter(|| PromptAnchors::new(black_box(&prompt)))
    });
    let index = ContextIndex::new(store.n_max(), &prompt);
    let anchors = PromptAnchors::new(&prompt);
    let src = CopySource {
        index: store.copy_index().unwrap(),
        anchors: &anchors,
        tokens: index.tokens(),
        stats: None,
    };
    for (name, copy) in [("without", None), ("with", Some(src))] {
        c.bench_function(&format!("propose k=8 {name} the copy pointer"), |b| {
            b.iter(|| {
                propose_until(
                    &store,
                    None,
                    black_box(&index),
                    8,
                    0.75,
                    0.0,
                    Mixing::Fixed,
                    None,
                    None,
                    copy,
                    None,
                )
                .unwrap()
            })
        });
    }
}

/// Similar past requests: the index of 100k (request, answer) pairs (requests of 40 tokens drawn
/// from a skewed vocabulary, as words are: a few frequent, most rare), a session's neighbours
/// for a 300-token prompt (its whole per-request cost at open), and a chain drafted with them.
fn neighbours(c: &mut Criterion, seqs: &[Vec<u32>]) {
    let mut rng = Rng(11);
    let mut word = move || {
        let u = f64::from(rng.below(1 << 20)) / f64::from(1u32 << 20);
        (49_152.0 * u * u * u) as u32
    };
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = seqs
        .iter()
        .cycle()
        .take(100_000)
        .map(|answer| ((0..40).map(|_| word()).collect(), answer.clone()))
        .collect();
    let mut group = c.benchmark_group("neighbours");
    group.sample_size(10);
    group.bench_function(format!("build from {} pairs", pairs.len()), |b| {
        b.iter(|| NeighbourIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice()))))
    });
    let index = NeighbourIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
    eprintln!(
        "neighbours: {} pairs, {} bytes ({:.0} per pair)",
        index.len(),
        index.bytes(),
        index.bytes() as f64 / index.len() as f64
    );
    let prompt: Vec<u32> = (0..300).map(|_| word()).collect();
    let mut online = OnlinePairs::new(1 << 20);
    for (r, a) in pairs.iter().take(20_000) {
        online.add(r, a, index.window());
    }
    group.sample_size(50);
    group.bench_function("session open, 300-token prompt, 8 neighbours", |b| {
        b.iter(|| index.session(black_box(&prompt), 8, None))
    });
    group.bench_function("session open, also 20k learned pairs", |b| {
        b.iter(|| index.session(black_box(&prompt), 8, Some(&online)))
    });
    group.finish();
    let answers: Vec<Vec<u32>> = pairs.iter().map(|(_, a)| a.clone()).collect();
    let corpus = Corpus::from_sequences(&answers, Some(49_152)).unwrap();
    let config = DrafterConfig {
        min_count: 2,
        ..DrafterConfig::default()
    };
    let store = NgramStore::build(&corpus, &config).unwrap();
    let ctx = ContextIndex::new(store.n_max(), &prompt);
    let nearest = index.session(&prompt, 8, None);
    let src = NeighbourSource {
        nearest: &nearest,
        stats: None,
    };
    for (name, near) in [("without", None), ("with", Some(src))] {
        c.bench_function(&format!("propose k=8 {name} neighbours"), |b| {
            b.iter(|| {
                propose_until(
                    &store,
                    None,
                    black_box(&ctx),
                    8,
                    0.75,
                    0.0,
                    Mixing::Fixed,
                    None,
                    None,
                    None,
                    near,
                )
                .unwrap()
            })
        });
    }
}

/// Engine steps of a [`RequestTable`]: `rows` requests of `context` tokens, each gaining one
/// token a step, drafted with full chains (a GPU engine) and with the CPU batch cut.
fn engine_steps(c: &mut Criterion, seqs: &[Vec<u32>]) {
    const STEPS: usize = 200;
    let corpus = Corpus::from_sequences(seqs, Some(49_152)).unwrap();
    let config = DrafterConfig {
        n_max: 8,
        min_count: 2,
        ..DrafterConfig::default()
    };
    let store = NgramStore::build(&corpus, &config).unwrap();
    let stream: Vec<i32> = task_like(800_000, 5)
        .concat()
        .into_iter()
        .map(|t| t as i32)
        .collect();
    let mut group = c.benchmark_group("engine step");
    group.sample_size(20);
    for (rows, context) in [(16usize, 512usize), (64, 512), (64, 2048), (256, 2048)] {
        let buffers: Vec<&[i32]> = (0..rows)
            .map(|r| &stream[r * 3_000..r * 3_000 + context + STEPS])
            .collect();
        for (name, overhead) in [("full chains", None), ("CPU cut", Some(22.0))] {
            let serving = ServingConfig {
                max_requests: 4 * rows,
                stale_steps: 2,
                stop_tokens: vec![],
                corpus_weight: 0.9,
                min_prob: 0.3,
                mixing: Mixing::LongerMatch,
                verify_cost: None,
                step_overhead: overhead,
                measure_step_cost: false,
                threads: 1,
                aliases: None,
                id_limit: u32::MAX,
                copy: None,
                copy_stats: None,
                neighbours: None,
                neighbour_count: 0,
                neighbour_learning: None,
            };
            let id = format!("{rows} rows x {context} tokens, {name}");
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut done = 0u64;
                    while done < iters {
                        // a fresh table each STEPS steps, its first (creating) step untimed
                        let mut table = RequestTable::new(store.n_max(), serving.clone());
                        for step in 0..=STEPS.min((iters - done) as usize) {
                            let views: Vec<Row<'_>> = buffers
                                .iter()
                                .map(|buf| Row {
                                    tokens: &buf[..context + step],
                                    new_tokens: if step == 0 { context } else { 1 },
                                    max_draft: 8,
                                })
                                .collect();
                            let start = Instant::now();
                            table.observe(&views);
                            let drafts = table.propose(&store, None, &views).unwrap();
                            table.record_drafts(black_box(&drafts));
                            if step > 0 {
                                total += start.elapsed();
                                done += 1;
                            }
                        }
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
