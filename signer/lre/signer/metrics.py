"""Prometheus metrics of the signer (``lre_`` prefix)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HSM_SECONDS = Histogram(
    "lre_hsm_operation_seconds",
    "Duration of PKCS#11 operations, lock wait included.",
    ["operation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
HSM_ERRORS = Counter("lre_hsm_errors_total", "PKCS#11 operations that failed.", ["operation"])
# The token's operations (signer.token); their error series exist from the start.
OPERATIONS = ("sign", "wrap", "unwrap", "read", "generate", "import")
for _operation in OPERATIONS:
    HSM_ERRORS.labels(_operation)
TIMESTAMPS = Counter(
    "lre_timestamps_total", "RFC 3161 requests answered, by PKIStatus.", ["status"]
)
SEALS = Counter("lre_seals_issued_total", "CAdES seals issued.")
PDF_SIGNATURES = Counter("lre_pdf_signatures_total", "PAdES signatures made on PDFs.")
CLOCK_OFFSET = Gauge(
    "lre_tsa_clock_offset_seconds",
    "Offset of the local clock from the reference clock.",
    multiprocess_mode="max",
)
CLOCK_TRUSTED = Gauge(
    "lre_tsa_clock_trusted",
    "1 while the TSA clock is known to be in sync.",
    multiprocess_mode="min",
)
CLOCK_SOURCE_OFFSET = Gauge(
    "lre_tsa_clock_source_offset_seconds",
    "Offset of the local clock from each configured clock source, as last measured.",
    ["source"],
    multiprocess_mode="max",
)
CLOCK_SOURCE_UP = Gauge(
    "lre_tsa_clock_source_up",
    "1 while the clock source answered the last synchronisation check.",
    ["source"],
    multiprocess_mode="min",
)
CLOCK_AGREEING = Gauge(
    "lre_tsa_clock_agreeing_sources",
    "Clock sources whose last measurement showed the local clock within its bound.",
    multiprocess_mode="min",
)
CLOCK_JOURNAL_FAILURES = Counter(
    "lre_tsa_clock_journal_failures_total",
    "Synchronisation checks that could not be written to clock_journal_file.",
)
TSA_SOURCE_REQUESTS = Counter(
    "lre_tsa_source_requests_total",
    "Signature timestamps asked of each configured timestamp source, by result.",
    ["source", "result"],
)
TOKEN_UP = Gauge("lre_signer_token_up", "1 while the token can sign.", multiprocess_mode="min")
CERT_EXPIRY = Gauge(
    "lre_certificate_expiry_timestamp_seconds",
    "notAfter of each signing certificate, as a Unix time.",
    ["purpose"],
    multiprocess_mode="min",
)
