"""The contract's facts as hakwatch reads them: the C headers of probes/ and the USDT provider, one home each (DESIGN.md)."""
