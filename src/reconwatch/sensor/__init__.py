"""Live sensor: eBPF (bpftrace) and auditd collectors producing Elastic Defend network events."""
