"""``portability keys``: make an encryption key, and re-seal every stored secret under the
newest one (see ``portability.rotation`` for the procedure and its guarantees)."""

from __future__ import annotations

import json
import sys

import typer

from portability.cli._context import load_settings
from portability.crypto import CredentialBox
from portability.db.engine import make_engine
from portability.errors import PortabilityError
from portability.rotation import RotationReport, rotate_secrets

group = typer.Typer(help="Encryption keys: generate, rotate.", no_args_is_help=True)


@group.command("generate")
def generate_cmd() -> None:
    """Print a new Fernet key (for PORTABILITY_ENCRYPTION_KEYS; keep it secret)."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


@group.command("rotate")
def rotate_cmd(
    batch_size: int = typer.Option(500, min=1, help="Rows re-sealed per transaction."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-seal every stored secret under the newest key of PORTABILITY_ENCRYPTION_KEYS.

    Safe to stop and run again: rows already under the newest key are skipped.
    """
    settings = load_settings()
    keys = settings.resolved_encryption_keys()
    box = CredentialBox(keys)
    engine = make_engine(settings)

    def progress(report: RotationReport) -> None:
        if not as_json:
            print(
                f"  batch {report.batches}: {report.examined:,} examined, "
                f"{report.rotated:,} re-sealed, {report.skipped:,} already current",
                file=sys.stderr,
            )

    try:
        report = rotate_secrets(engine, box, batch_size=batch_size, progress=progress)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"keys": len(keys), **report.to_dict()}, indent=2))
    else:
        typer.echo(
            f"rotated: {report.rotated:,} re-sealed under the newest of {len(keys)} keys, "
            f"{report.skipped:,} already current, {report.changed_meanwhile:,} changed meanwhile, "
            f"{len(report.unreadable):,} unreadable ({report.examined:,} examined)"
        )
    if report.unreadable:
        raise PortabilityError(
            f"{len(report.unreadable)} stored secrets open with none of the configured keys "
            f"({', '.join(report.unreadable[:10])}): add the key they were sealed with to "
            "PORTABILITY_ENCRYPTION_KEYS and run again"
        )


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="keys")
