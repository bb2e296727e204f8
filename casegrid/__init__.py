"""casegrid: spatial case management for city management (城市管理进社区)."""

import pandas as _pd

__version__ = "0.1.0"

# pandas 3 keeps text columns in Arrow memory whenever pyarrow is installed (it is: the bulk
# import writes its COPY data with Arrow, casegrid.csv_text.copy_csv). The import's reading
# and validation run slower on those: 12.8 s of CPU against 10.3-11.5 s on Python strings
# for a million rows (one-off, alternating). So text columns stay Python strings, as they
# were before pyarrow came in.
_pd.set_option("mode.string_storage", "python")
