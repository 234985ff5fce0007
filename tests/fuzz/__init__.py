"""Tests of gearspec.fuzz."""
