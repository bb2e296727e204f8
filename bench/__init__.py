"""casegrid's benchmarks: ``python -m bench`` (``make bench``) writes ``bench/RESULTS.md``."""
