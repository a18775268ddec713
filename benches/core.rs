//! criterion benches for the core: store build throughput and proposal latency.
//!
//! Corpus: synthetic task outputs (templates with slot substitutions over a 49,152-token
//! vocabulary), 1M tokens; context: 2,048 tokens from the same distribution.
//! Run: `cargo bench --bench core`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tasc_rs::{propose, ContextIndex, Corpus, DrafterConfig, NgramStore};

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
}

criterion_group!(core, benches);
criterion_main!(core);
