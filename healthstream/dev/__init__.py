"""Development tools: synthetic telemetry, the embedded broker, the demo, a worker as a child
process, a group's committed offsets."""
