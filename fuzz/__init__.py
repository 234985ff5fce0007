"""gearspec.fuzz: Hypothesis fuzzers for parsers, stateful server models, a network fuzzer."""
