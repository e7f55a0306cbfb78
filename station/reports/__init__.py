"""Human-readable reports: per-cell certificates, batch reports, safe CSV/XLSX summaries, and the
recomputation check that ties every printed figure back to the raw data."""
