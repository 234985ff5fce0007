"""Tests of the core: tables, codec, vectors, admin protocol, CLI and packaging."""
