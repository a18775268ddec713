//! Unit tests, including a differential test against a plain recount-every-step loop.

use std::collections::HashMap;

use super::*;

fn vocab(strings: &[&str]) -> Vec<Vec<u8>> {
    strings.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn corpus(seqs: &[Vec<u32>]) -> Corpus {
    Corpus::from_sequences(seqs, None).unwrap()
}

fn config(budget: usize, n_max: usize, alpha: f64) -> EnrichConfig {
    EnrichConfig {
        budget,
        n_max,
        alpha,
        min_count: 1,
        strict: false,
        byte_level: false,
        boundaries: Vec::new(),
    }
}

/// The loop written the obvious way: recount everything, sort, take the first acceptable.
fn naive(seqs: &[Vec<u32>], base: &[Vec<u8>], cfg: &EnrichConfig) -> Vec<(Vec<u32>, u64)> {
    let mut seqs = seqs.to_vec();
    let mut strings = base.to_vec();
    let mut rejected: Vec<Vec<u32>> = Vec::new();
    let mut out = Vec::new();
    while out.len() < cfg.budget {
        let mut counts: HashMap<Vec<u32>, u32> = HashMap::new();
        for seq in &seqs {
            for n in 2..=cfg.n_max {
                for w in seq.windows(n) {
                    *counts.entry(w.to_vec()).or_default() += 1;
                }
            }
        }
        let mut cands: Vec<(Vec<u32>, u32)> = counts
            .into_iter()
            .filter(|(k, c)| *c >= cfg.min_count && !rejected.contains(k))
            .collect();
        cands.sort_by(|(a, ca), (b, cb)| {
            let (sa, sb) = (working::score(*ca, a.len()), working::score(*cb, b.len()));
            sb.cmp(&sa).then(a.len().cmp(&b.len())).then(a.cmp(b))
        });
        let mut chosen = None;
        for (key, count) in cands {
            let bytes: Vec<u8> = key
                .iter()
                .flat_map(|&t| strings[t as usize].clone())
                .collect();
            let ok = std::str::from_utf8(&bytes).is_ok()
                && !bytes.iter().skip(1).any(|b| cfg.boundaries.contains(b))
                && !strings.contains(&bytes)
                && naive_pcs(&seqs, &strings, &bytes) < cfg.alpha;
            if ok {
                chosen = Some((key, count, bytes));
                break;
            }
            rejected.push(key);
        }
        let Some((key, count, bytes)) = chosen else {
            break;
        };
        let id = strings.len() as u32;
        strings.push(bytes);
        for seq in &mut seqs {
            *seq = apply_merges(
                &[NewToken {
                    id,
                    parts: key.clone(),
                    base_ids: vec![],
                    bytes: vec![],
                    count: 0,
                    score: 0,
                    merged: 0,
                    pcs: 0.0,
                    tokens_after: 0,
                }],
                seq,
            );
        }
        out.push((key.clone(), working::score(count, key.len())));
    }
    out
}

/// PCS straight from the definition: every occurrence in the text, checked against the byte
/// offsets of the current tokens.
fn naive_pcs(seqs: &[Vec<u32>], strings: &[Vec<u8>], s: &[u8]) -> f64 {
    let (mut aligned, mut total) = (0, 0);
    for seq in seqs {
        let text: Vec<u8> = seq
            .iter()
            .flat_map(|&t| strings[t as usize].clone())
            .collect();
        let mut bounds = vec![0];
        for &t in seq {
            bounds.push(bounds.last().unwrap() + strings[t as usize].len());
        }
        for start in 0..text.len() {
            if text[start..].starts_with(s) {
                total += 1;
                if bounds.contains(&start) && bounds.contains(&(start + s.len())) {
                    aligned += 1;
                }
            }
        }
    }
    if total == 0 {
        0.0
    } else {
        (total - aligned) as f64 / total as f64
    }
}

/// A small deterministic generator (no dev-dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn matches_naive_recount_on_random_corpora() {
    let base = vocab(&["a", "b", "ab", "c", " ", "ba", "abc"]);
    let mut rng = Lcg(7);
    for case in 0..200 {
        let seqs: Vec<Vec<u32>> = (0..1 + rng.below(6))
            .map(|_| {
                (0..rng.below(14))
                    .map(|_| rng.below(4) as u32 + (case % 4))
                    .collect()
            })
            .collect();
        if seqs.iter().all(|s| s.is_empty()) {
            continue;
        }
        let n_max = 2 + (case as usize % 4);
        let alpha = [1.0, 0.5, 0.2][case as usize % 3];
        let boundaries = [&b""[..], b"b", b" "][case as usize % 5 % 3].to_vec();
        let cfg = EnrichConfig {
            boundaries,
            ..config(12, n_max, alpha)
        };
        let fast = enrich(&corpus(&seqs), &base, &cfg).unwrap();
        let got: Vec<(Vec<u32>, u64)> = fast
            .tokens
            .iter()
            .map(|t| (t.parts.clone(), t.score))
            .collect();
        assert_eq!(got, naive(&seqs, &base, &cfg), "case {case}: {seqs:?}");
        // The final tokenization is what applying the merges gives, and counts add up.
        for (seq, merged) in seqs.iter().zip(fast.corpus.sequences()) {
            assert_eq!(apply_merges(&fast.tokens, seq), merged);
        }
        let last = fast
            .tokens
            .last()
            .map_or(fast.initial_tokens, |t| t.tokens_after);
        assert_eq!(last, fast.corpus.num_tokens() as u64);
    }
}

#[test]
fn picks_highest_score_and_breaks_ties_by_length_then_ids() {
    let base = vocab(&["x", "y", "z", "w"]);
    // "x y" and "z w" both occur twice (score 2), "x y z w"... only once.
    let seqs = vec![vec![2, 3], vec![0, 1], vec![0, 1], vec![2, 3]];
    let result = enrich(&corpus(&seqs), &base, &config(2, 4, 1.0)).unwrap();
    let parts: Vec<&[u32]> = result.tokens.iter().map(|t| t.parts.as_slice()).collect();
    assert_eq!(parts, vec![&[0, 1][..], &[2, 3][..]]);
    assert_eq!(result.tokens[0].id, 4);
    assert_eq!(result.tokens[1].bytes, b"zw");
}

#[test]
fn merges_left_to_right_without_overlap() {
    let base = vocab(&["a"]);
    let result = enrich(&corpus(&[vec![0, 0, 0]]), &base, &config(1, 2, 1.0)).unwrap();
    let token = &result.tokens[0];
    assert_eq!((token.count, token.merged, token.tokens_after), (2, 1, 2));
    assert_eq!(result.corpus.tokens(), &[1, 0]);
}

#[test]
fn new_tokens_nest_and_spell_in_base_ids() {
    let base = vocab(&["a", "b", "c"]);
    let seqs = vec![vec![0, 1, 2]; 3];
    let result = enrich(&corpus(&seqs), &base, &config(1, 2, 1.0)).unwrap();
    assert_eq!(result.tokens[0].parts, vec![0, 1]);
    let result = enrich(&corpus(&seqs), &base, &config(2, 2, 1.0)).unwrap();
    assert_eq!(result.tokens[1].parts, vec![3, 2]);
    assert_eq!(result.tokens[1].base_ids, vec![0, 1, 2]);
    assert_eq!(result.tokens[1].bytes, b"abc");
    assert_eq!(result.tokens[1].tokens_after, 3);
}

#[test]
fn prefix_collision_score_counts_misaligned_occurrences() {
    let base = vocab(&[" in", " the", " therapy", "x", "the"]);
    // " in the" occurs aligned twice; " in" + " therapy" makes it end inside a token once.
    let seqs = vec![vec![0, 1], vec![0, 1, 3], vec![0, 2]];
    let c = corpus(&seqs);
    let index = pcs::PcsIndex::new(&c, &base);
    let all = |_: usize| true;
    assert_eq!(index.occurrences(b" in the", all), (2, 3));
    assert!((index.score(b" in the", all) - 1.0 / 3.0).abs() < 1e-12);
    // Strings inside tokens, starting or ending there, collide at each occurrence.
    assert_eq!(index.occurrences(b" th", all), (0, 3));
    assert_eq!(index.occurrences(b"the", all), (0, 3));
    assert_eq!(index.occurrences(b"erapy", all), (0, 1));
    assert_eq!(index.occurrences(b"inx", all), (0, 0));
    // Boundaries removed by merges (position 1 no longer starts a token) misalign occurrences.
    assert_eq!(index.occurrences(b" the", |p| p != 1), (1, 3));
    let strict_filter = enrich(&c, &base, &config(1, 2, 0.3)).unwrap();
    assert_eq!(strict_filter.skipped[0].reason, SkipReason::PrefixCollision);
    assert_eq!(strict_filter.skipped[0].bytes, b" in the");
    let no_filter = enrich(&c, &base, &config(1, 2, 1.0)).unwrap();
    assert_eq!(no_filter.tokens[0].bytes, b" in the");
}

#[test]
fn skips_duplicate_strings_and_invalid_utf8() {
    let base = vec![
        b"a".to_vec(),
        b"b".to_vec(),
        b"ab".to_vec(),
        vec![0xC3],
        vec![0xA9],
    ];
    let seqs = vec![vec![0, 1, 3, 4]; 3];
    let result = enrich(&corpus(&seqs), &base, &config(2, 2, 1.0)).unwrap();
    let reasons: Vec<SkipReason> = result.skipped.iter().map(|s| s.reason).collect();
    assert!(reasons.contains(&SkipReason::DuplicateString));
    assert!(reasons.contains(&SkipReason::NotUtf8));
    assert_eq!(result.tokens[0].bytes, "é".as_bytes());
}

#[test]
fn exhaustion_is_reported_or_an_error_when_strict() {
    let base = vocab(&["a", "b"]);
    let c = corpus(&[vec![0, 1], vec![0, 1]]);
    let result = enrich(&c, &base, &config(5, 2, 1.0)).unwrap();
    assert!(result.exhausted);
    assert_eq!(result.tokens.len(), 1);
    let strict = EnrichConfig {
        strict: true,
        ..config(5, 2, 1.0)
    };
    assert!(matches!(
        enrich(&c, &base, &strict),
        Err(EnrichError::Exhausted { added: 1, .. })
    ));
    let zero = enrich(&c, &base, &config(0, 2, 1.0)).unwrap();
    assert!(zero.tokens.is_empty() && !zero.exhausted);
}

#[test]
fn bad_input_and_settings_are_errors() {
    let base = vocab(&["a", "b"]);
    let c = corpus(&[vec![0, 1]]);
    assert_eq!(
        enrich(&corpus(&[vec![]]), &base, &config(1, 2, 1.0)),
        Err(EnrichError::EmptyCorpus)
    );
    assert!(matches!(
        enrich(&corpus(&[vec![0, 5]]), &base, &config(1, 2, 1.0)),
        Err(EnrichError::TokenOutOfRange {
            id: 5,
            position: 1,
            vocab_size: 2
        })
    ));
    assert_eq!(
        enrich(&c, &[], &config(1, 2, 1.0)),
        Err(EnrichError::EmptyVocabulary)
    );
    for (n_max, alpha) in [(1, 0.5), (9, 0.5), (4, 0.0), (4, 1.5), (4, f64::NAN)] {
        let err = enrich(&c, &base, &config(1, n_max, alpha)).unwrap_err();
        assert!(err.is_config(), "{err}");
    }
    let cfg = EnrichConfig {
        min_count: 0,
        ..config(1, 2, 1.0)
    };
    assert_eq!(enrich(&c, &base, &cfg), Err(EnrichError::MinCount(0)));
}

#[test]
fn wide_n_max_uses_the_larger_key() {
    let base = vocab(&["a", "b", "c", "d", "e", "f"]);
    let seqs = vec![vec![0, 1, 2, 3, 4, 5]; 2];
    let result = enrich(&corpus(&seqs), &base, &config(1, 6, 1.0)).unwrap();
    assert_eq!(result.tokens[0].parts, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(result.tokens[0].score, 10);
}

#[test]
fn byte_level_filter_skips_strings_the_decoder_would_garble() {
    assert!(
        byte_level_decodes(" café") && byte_level_decodes("intent:") && byte_level_decodes("日本")
    );
    assert!(!byte_level_decodes("café") && !byte_level_decodes("ÿé"));
    let base = vocab(&["caf", "é", "x"]);
    let seqs = vec![vec![0, 1]; 3];
    let cfg = EnrichConfig {
        byte_level: true,
        ..config(1, 2, 1.0)
    };
    let result = enrich(&corpus(&seqs), &base, &cfg).unwrap();
    assert!(result.exhausted);
    assert_eq!(result.skipped[0].reason, SkipReason::ByteLevelDecode);
}

#[test]
fn boundaries_keep_fields_apart() {
    // "a;b" fields: without boundaries the whole output becomes one token.
    let base = vocab(&["a", ";", "b", "c"]);
    let seqs = vec![vec![0, 1, 2], vec![0, 1, 2], vec![3, 1, 2]];
    let free = enrich(&corpus(&seqs), &base, &config(1, 3, 1.0)).unwrap();
    assert_eq!(free.tokens[0].bytes, b"a;b");
    let cfg = EnrichConfig {
        boundaries: b";".to_vec(),
        ..config(10, 3, 1.0)
    };
    let split = enrich(&corpus(&seqs), &base, &cfg).unwrap();
    let strings: Vec<&[u8]> = split.tokens.iter().map(|t| t.bytes.as_slice()).collect();
    assert_eq!(strings, vec![b";b".as_slice()]); // may start with ';', never hold one later
    assert!(split.exhausted);
    assert!(split
        .skipped
        .iter()
        .all(|s| s.reason == SkipReason::CrossesBoundary));
    assert_eq!(naive(&seqs, &base, &cfg).len(), 1);
}

#[test]
fn scan_and_index_count_the_same_occurrences() {
    let mut rng = Lcg(7);
    for case in 0..300 {
        // Small alphabets make repetitive texts; some tokens share prefixes and suffixes.
        let alphabet = 1 + rng.below(3) as u8;
        let base: Vec<Vec<u8>> = (0..2 + rng.below(6))
            .map(|_| {
                (0..1 + rng.below(3))
                    .map(|_| b'a' + rng.below(u64::from(alphabet)) as u8)
                    .collect()
            })
            .collect();
        let seqs: Vec<Vec<u32>> = (0..1 + rng.below(4))
            .map(|_| {
                (0..1 + rng.below(12))
                    .map(|_| rng.below(base.len() as u64) as u32)
                    .collect()
            })
            .collect();
        let c = corpus(&seqs);
        let index = pcs::PcsIndex::new(&c, &base);
        let dead: Vec<bool> = (0..c.tokens().len()).map(|_| rng.below(3) == 0).collect();
        let live = |p: usize| !dead[p];
        let text: Vec<u8> = seqs[0]
            .iter()
            .flat_map(|&t| base[t as usize].clone())
            .collect();
        for _ in 0..5 {
            let start = rng.below(text.len() as u64) as usize;
            let len = 1 + rng.below((text.len() - start) as u64) as usize;
            let s = &text[start..start + len];
            let want = index.occurrences_by_index_only(s, live);
            if dead.iter().all(|d| !d) {
                let pcs = naive_pcs(&seqs, &base, s);
                let got = if want.1 == 0 {
                    0.0
                } else {
                    (want.1 - want.0) as f64 / want.1 as f64
                };
                assert!((pcs - got).abs() < 1e-12, "case {case}");
            }
            assert_eq!(
                want,
                index.occurrences_by_scan(s, live),
                "case {case}: {:?} in {seqs:?} over {base:?}",
                String::from_utf8_lossy(s)
            );
        }
    }
}

#[test]
fn a_long_run_of_one_token_enriches_in_linear_time() {
    // Each new token is four of the previous one (4, 16, ..., 4^6 bytes): with the walk of
    // every occurrence this took ~4x longer per token; the scan keeps every step linear.
    let base = vocab(&["a", "b"]);
    let c = corpus(&[vec![0; 200_000]]);
    let result = enrich(&c, &base, &config(6, 4, 1.0)).unwrap();
    let lengths: Vec<usize> = result.tokens.iter().map(|t| t.bytes.len()).collect();
    assert_eq!(lengths, [4, 16, 64, 256, 1024, 4096]);
    let index = pcs::PcsIndex::new(&c, &base);
    let s = vec![b'a'; 4096];
    assert_eq!(
        index.occurrences(&s, |_| true),
        (200_000 - 4096 + 1, 200_000 - 4096 + 1)
    );
}
