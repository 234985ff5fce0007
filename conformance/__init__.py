"""gearspec.conformance: the Gearman conformance suite and its targets."""
