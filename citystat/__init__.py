"""CityStat: performance management for city governments.

`from citystat import CityStat` gives the Python API (see citystat/api.py). The import is
lazy so that the pure core (`citystat.core`) loads without DuckDB or Streamlit.
"""

__version__ = "0.1.0"
__all__ = ["CityStat"]


def __getattr__(name: str):
    if name == "CityStat":
        from citystat.api import CityStat

        return CityStat
    raise AttributeError(name)
