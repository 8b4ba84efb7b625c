"""The independent auditor's tools: `verify-log` reads the database on its own
(read-only, streaming) and checks it with the pure domain only."""
