"""casegrid test suite (a package, so tests can import the shared helpers of tests/helpers/)."""
