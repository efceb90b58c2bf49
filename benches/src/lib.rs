//! Benchmarks live in `benches/benches/`; the comparison scripts beside
//! them run ours and other implementations in one go.
