"""gearspec.fuzz: Hypothesis fuzzers for parsers, a stateful server model, a network fuzzer.

- `gearspec.fuzz.strategies`: valid and near-valid Gearman input from the spec tables
  (Hypothesis strategies, and a seeded generator);
- `gearspec.fuzz.parsers`: properties for any parser (`fuzz_parser`) and for gearspec's codec;
- `gearspec.fuzz.model`: `JobServerModel`, a `RuleBasedStateMachine` checked against a live
  server (`check_target`), with replay scripts (`gearspec.fuzz.script`);
- `gearspec.fuzz.network`: the network fuzzer behind `gearspec fuzz` (`run_network_fuzz`).

Submodules are imported on demand: importing this package costs nothing. See docs/fuzz.md.
"""
