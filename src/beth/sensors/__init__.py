"""Sensors: eBPF process events and AF_PACKET DNS events in the BETH schema."""
