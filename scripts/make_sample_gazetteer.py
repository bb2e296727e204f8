"""Write the sample city's SYNTHETIC gazetteer (data/gazetteer/sample_gazetteer.geojson).

Deterministic (seed 370481): rerunning it reproduces the file byte for byte. See
casegrid/demo/gazetteer.py for what it holds and data/README.md for its provenance.
"""

from casegrid.demo.gazetteer import GAZETTEER_FILE, write_sample_gazetteer

if __name__ == "__main__":
    n = write_sample_gazetteer()
    print(f"{GAZETTEER_FILE}: {n} features (SYNTHETIC)")
