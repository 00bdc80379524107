"""msa host: finds the bonded button, verifies every frame, and hands typed events to dispatch."""
