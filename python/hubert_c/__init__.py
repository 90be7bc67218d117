"""hubert.c from Python: ctypes over libhubert.so, numpy only.

    from hubert_c import UpstreamExpert, Model
"""
from .model import HubertError, Model
from .upstream import SAMPLE_RATE, UpstreamExpert

__all__ = ["Model", "UpstreamExpert", "HubertError", "SAMPLE_RATE"]
__version__ = "0.1.0"
