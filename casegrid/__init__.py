"""casegrid: spatial case management for city management (城市管理进社区)."""

__version__ = "0.1.0"
