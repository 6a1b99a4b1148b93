"""smpp-bridge: an SMPP v3.4 server that sends through HTTP SMS APIs."""

from bridge import native

__version__ = "0.1.0"

# Before any other module of ours is imported: the compiled modules when they are
# built, current and not refused by SMPP_BRIDGE_PURE=1, else the source (bridge/native.py).
native.install()
