"""Diagnostics over UDS (ISO 14229) on ISO-TP (ISO 15765-2): catalog, client, exchanges."""
