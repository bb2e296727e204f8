"""Everything SYNTHETIC, in one place: the demo's data, never the ledger's rules.

* :mod:`casegrid.demo.city` loads the sample city (real subdistrict names, synthetic
  geometry) from ``data/boundaries/``;
* :mod:`casegrid.demo.gazetteer` generates and loads its synthetic gazetteer;
* :mod:`casegrid.demo.complaints` generates a year of made-up complaints and loads them
  through the bulk import;
* :mod:`casegrid.demo.history` gives them a made-up workflow history through the workflow's
  own rules;
* :mod:`casegrid.demo.activities` makes up a year of community activities;
* :mod:`casegrid.demo.cli` is ``casegrid sample load``, ``demo-accounts`` and ``demo-token``
  (what ``make run`` calls).

The domain packages (``cases/``, ``geo/``) never import from here; the demo calls their
public functions, so its rows pass the same checks and the same privacy masking as real ones.
"""
