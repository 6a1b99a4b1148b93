"""smpp-bridge: an SMPP v3.4 server that sends through HTTP SMS APIs."""

__version__ = "0.1.0"
