"""Test harness shared by the tests and the benches (benches put tests/ on their path): machines,
servers, a browser and the Debian packages they need. Not part of the installed package."""
