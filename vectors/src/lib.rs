//! Known-answer test vectors: the data files in `vectors/data/`, one loader
//! for their `key = hex` format, and a runner that checks every file.
