"""``bench diag``'s output: a rich table per kind of answer, or JSON lines' worth of records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .catalog import Ecu, dtc_label, status_names
from .client import Exchange


def exchanges_json(exchanges: Sequence[Exchange], ecus: dict[str, Ecu]) -> list[dict[str, Any]]:
    return [e.to_json(ecus.get(e.ecu)) for e in exchanges]


def print_tables(exchanges: Sequence[Exchange], ecus: dict[str, Ecu], console: Console) -> None:
    """DTCs (label, name, status byte and bits, text), DID values, clears, then errors."""
    dtcs = [e for e in exchanges if e.dtcs is not None]
    if dtcs:
        table = Table(title="DTCs")
        for column in ("ECU", "DTC", "name", "status", "status bits", "text"):
            table.add_column(column)
        for exchange in dtcs:
            ecu = ecus.get(exchange.ecu)
            if not exchange.dtcs:
                table.add_row(exchange.ecu, "—", "(none reported)", "", "", "")
            for code, status in exchange.dtcs or []:
                dtc = ecu.describe_dtc(code) if ecu else None
                table.add_row(
                    exchange.ecu,
                    dtc_label(code),
                    dtc.name if dtc else "",
                    f"0x{status:02X}",
                    ", ".join(status_names(status)),
                    dtc.text if dtc else "",
                )
        console.print(table)
    dids = [e for e in exchanges if e.did is not None and e.ok]
    if dids:
        table = Table(title="DIDs")
        for column in ("ECU", "DID", "name", "value", "unit"):
            table.add_column(column)
        for exchange in dids:
            ecu = ecus.get(exchange.ecu)
            did = ecu.did(exchange.did) if ecu and exchange.did else None
            value = exchange.value
            shown = value if isinstance(value, str) else f"{value:g}"
            table.add_row(
                exchange.ecu,
                f"0x{did.id:04X}" if did else "",
                exchange.did or "",
                shown,
                exchange.unit,
            )
        console.print(table)
    for exchange in exchanges:
        if exchange.operation == "clear_dtcs" and exchange.ok:
            console.print(f"{exchange.ecu}: DTCs cleared")
    for exchange in exchanges:
        if exchange.error:
            console.print(f"[red]{exchange.summary()}[/red]")
