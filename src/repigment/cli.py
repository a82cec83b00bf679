"""The ``repigment`` command line: a thin shell over the library.

Exit codes: 0 success; 2 unusable input (one-line message, no traceback);
1 an unexpected internal error (also one line; set ``REPIGMENT_DEBUG=1`` for the
traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import RepigmentError
from .vocabulary import DEFAULT_MARKER_MM, BodyRegion

app = typer.Typer(
    name="repigment",
    help="Measure vitiligo repigmentation from serial photos of the same patch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_UNUSABLE_INPUT = 2


def _fail(message: str, code: int = EXIT_UNUSABLE_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _parse_roi(text: Optional[str]):
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        _fail(f"--roi must be x,y,width,height in baseline-photo pixels, got {text!r}")
    return values


def _run(action):
    """Run ``action`` turning expected failures into one-line errors."""
    try:
        return action()
    except RepigmentError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        if os.environ.get("REPIGMENT_DEBUG"):
            raise
        _fail(f"unexpected internal error ({type(exc).__name__}: {exc}); rerun with REPIGMENT_DEBUG=1 and report it",
              code=1)


@app.command()
def analyze(
    series_dir: Path = typer.Argument(..., help="Folder with the visit photos (and optionally visits.csv)."),
    out: Path = typer.Option(..., "--out", help="Folder for results.json, results.csv and masks/."),
    treatment_start: Optional[str] = typer.Option(
        None, "--treatment-start", help="Treatment start date, YYYY-MM-DD (default: the baseline date)."
    ),
    marker_mm: float = typer.Option(DEFAULT_MARKER_MM, "--marker-mm", help="Printed side of the ArUco scale marker, mm."),
    roi: Optional[str] = typer.Option(None, "--roi", help="Region of interest x,y,w,h in baseline-photo pixels."),
    body_region: Optional[str] = typer.Option(
        None, "--region", help=f"Body region of the patch: {BodyRegion.choices()}."
    ),
    hand_unit_cm2: Optional[float] = typer.Option(None, "--hand-unit-cm2", help="The patient's hand unit, cm²."),
    height_cm: Optional[float] = typer.Option(None, "--height-cm", help="Height, cm (with --weight-kg: hand unit)."),
    weight_kg: Optional[float] = typer.Option(None, "--weight-kg", help="Weight, kg (with --height-cm: hand unit)."),
    hand_photo: Optional[Path] = typer.Option(
        None, "--hand-photo", help="Photo of the palm and fingers with the marker beside it (hand unit)."
    ),
    labels: Optional[Path] = typer.Option(
        None, "--labels",
        help="Strokes PNG on the baseline photo (0 unlabelled, 1 depigmented, 2 normal skin, 3 not skin), "
             "carried to every visit.",
    ),
    visit_labels: Optional[list[str]] = typer.Option(
        None, "--visit-labels",
        help="IMAGE=LABELS.png: strokes on a later visit's own photo (file name as in the series), which then "
             "judge that visit alone. Repeat for more visits.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
) -> None:
    """Score every visit of a series against its baseline photo."""
    region = _parse_roi(roi)
    visit_label_files = _parse_visit_labels(visit_labels or [])

    def action():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from .clinical.summary import clinical_summary, resolve_hand_unit
        from .clinical.vasi import vasi_index_name
        from .io import LabelsByImage, read_labels
        from .limits import Limits
        from .series.pipeline import analyze_series
        from .series.results import MaskWriter, write_results

        limits = Limits.from_env()
        file_limits = {"max_pixels": limits.max_pixels, "max_file_bytes": limits.max_file_bytes}
        strokes = None if labels is None else read_labels(labels, **file_limits)
        # Every strokes file is read once now, so a bad one stops the command
        # before the long analysis, and again when its visit is analysed: the
        # series never holds every visit's full-size strokes at once.
        for path in visit_label_files.values():
            read_labels(path, **file_limits)
        visit_strokes = LabelsByImage(visit_label_files, **file_limits)

        # Check the clinical options before the long analysis.
        vasi_index_name(body_region)
        hand_unit = resolve_hand_unit(hand_unit_cm2=hand_unit_cm2, height_cm=height_cm, weight_kg=weight_kg,
                                      hand_photo=hand_photo, marker_mm=marker_mm)
        console = Console(stderr=True)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=True,
        ) as bar:
            task = bar.add_task("Analysing visits", total=None)

            def progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=f"Analysed {name}")

            result = analyze_series(
                series_dir, treatment_start=treatment_start, marker_mm=marker_mm, roi=region, labels=strokes,
                visit_labels=visit_strokes, progress=progress, limits=limits, keep_images=True,
                mask_writer=MaskWriter(out),
            )
        clinical = clinical_summary(result, body_region=body_region, hand_unit=hand_unit)
        write_results(result, out, clinical=clinical)
        if not quiet:
            _print_table(result)
            for record in [clinical.get("latest"), *clinical["checkpoints"].values()]:
                if record is not None:
                    typer.echo(record["clinician_message"])
        typer.echo(f"wrote {out / 'results.json'}", err=True)

    _run(action)


def _parse_visit_labels(values: list[str]) -> dict[str, Path]:
    """``IMAGE=LABELS.png`` options as a mapping (exit 2 with a one-line message when malformed)."""
    parsed: dict[str, Path] = {}
    for value in values:
        image, sep, path = value.partition("=")
        if not sep or not image.strip() or not path.strip():
            _fail(f"--visit-labels takes IMAGE=LABELS.png (the visit photo's file name, then the strokes PNG), "
                  f"got {value!r}")
        if image.strip() in parsed:
            _fail(f"--visit-labels names {image.strip()!r} twice; give one strokes file per visit photo")
        parsed[image.strip()] = Path(path.strip())
    return parsed


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    unit = "cm²" if result.mm_per_px is not None else "px"
    table = Table(title=f"Repigmentation since baseline ({result.baseline})")
    for column in ("visit", "week", f"area {unit}", "repig. %", "VASI resid.", "aligned"):
        table.add_column(column, justify="left" if column == "visit" else "right", no_wrap=True)
    remarks = []
    for visit in result.visits:
        s = visit.score if visit.ok else None
        area = "—" if s is None else (f"{s.area_cm2:.2f}" if s.area_cm2 is not None else str(s.area_px))
        reg = visit.registration
        table.add_row(
            visit.image,
            f"{visit.weeks_since_start:.1f}",
            area,
            "—" if s is None else f"{s.repigmentation_pct:.1f}",
            "—" if s is None else f"{s.vasi_residual_depigmentation}%",
            "—" if reg is None else (f"{reg.score:.2f}" if reg.ok else "failed"),
        )
        for text in ([visit.error] if visit.error else []) + list(visit.notes):
            remarks.append(f"{visit.image}: {text}")
    console.print(table)
    m = result.milestones
    console.print(
        "Milestones (first week reached): "
        + ", ".join(f"{k} {'week ' + format(v, '.1f') if v is not None else 'not reached'}"
                    for k, v in (("50%", m.vasi50_week), ("75%", m.vasi75_week), ("90%", m.vasi90_week)))
    )
    for line in remarks:
        console.print(f"[yellow]•[/yellow] {line}", highlight=False)


@app.command()
def segment(
    image: Path = typer.Argument(..., help="The photo."),
    out: Path = typer.Option(..., "--out", help="Mask PNG to write (0/255, the upright photo's size)."),
    marker_mm: float = typer.Option(DEFAULT_MARKER_MM, "--marker-mm", help="Printed side of the ArUco scale marker, mm."),
    roi: Optional[str] = typer.Option(None, "--roi", help="Region of interest x,y,w,h in photo pixels."),
    labels: Optional[Path] = typer.Option(
        None, "--labels",
        help="Strokes PNG the photo's size: 0 unlabelled, 1 depigmented, 2 normal skin, 3 not skin.",
    ),
) -> None:
    """Write one photo's depigmented-skin mask; print its area, confidence and why."""
    region = _parse_roi(roi)

    def action():
        from .io import atomic_write_bytes, encode_png, read_labels
        from .limits import Limits
        from .series.pipeline import segment_image

        if out.suffix.lower() != ".png":
            _fail(f"--out must be a .png file, got {out.name!r}")
        limits = Limits.from_env()
        strokes = None if labels is None else read_labels(
            labels, max_pixels=limits.max_pixels, max_file_bytes=limits.max_file_bytes)
        result = segment_image(image, roi=region, labels=strokes, marker_mm=marker_mm, limits=limits)
        atomic_write_bytes(out, encode_png(result.mask.astype(bool)))
        area = f"{result.area_cm2:.2f} cm²" if result.area_cm2 is not None else f"{result.area_px} px"
        typer.echo(
            f"depigmented area {area}; method {result.method}; confidence {result.confidence:.2f}"
            + (f" ({result.reason})" if result.reason else "") + f"; wrote {out}",
            err=True,
        )

    _run(action)


@app.command()
def batch(
    manifest: Path = typer.Argument(
        ..., help="CSV with columns patient,patch,date,image (optional treatment_start, marker_mm)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for one sub-folder per series, summary.csv and failures.csv."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Local worker processes (default: the CPU count)."
    ),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="'local' for a Dask LocalCluster, or a running Dask scheduler's ADDRESS."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score every series of a manifest; a re-run skips series already scored.

    Exit codes: 0 everything scored, 1 some visits failed (see failures.csv),
    2 unusable manifest or options, 130 interrupted.
    """

    def action():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from .batch import score_manifest

        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} series"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=quiet,
            transient=True,
        ) as bar:
            task = bar.add_task("Scoring series", total=None)

            def progress(done: int, total: int, series: str) -> None:
                bar.update(task, completed=done, total=total, description=f"Scored {series}" if done else "Scoring")

            result = score_manifest(manifest, out, workers=workers, scheduler=scheduler, progress=progress)
        typer.echo(
            f"{result.scored} series scored, {result.skipped} already done, {result.failed} failed; "
            f"{len(result.failures)} visit(s) without figures; wrote {result.summary_csv}",
            err=True,
        )
        if result.failures:
            typer.echo(f"see {result.failures_csv}", err=True)
            raise typer.Exit(1)

    _run(action)


@app.command()
def marker(
    out: Path = typer.Option(..., "--out", help="PDF to write."),
    mm: float = typer.Option(DEFAULT_MARKER_MM, "--mm", help="Printed side of each marker, mm (10-100)."),
    paper: str = typer.Option("A4", "--paper", help="A4 or letter."),
) -> None:
    """Write a printable PDF sheet of ArUco scale markers, with a 50 mm check line."""

    def action():
        from .report.marker_sheet import marker_sheet_pdf

        if out.suffix.lower() != ".pdf":
            _fail(f"--out must be a .pdf file, got {out.name!r}")
        marker_sheet_pdf(out, marker_mm=mm, paper=paper)
        typer.echo(f"wrote {out}: print it at 100 % (actual size) and check the 50 mm line", err=True)

    _run(action)


@app.command()
def report(
    out_dir: Path = typer.Argument(..., help="Folder written by `repigment analyze` (results.json, masks/)."),
    out: Path = typer.Option(..., "--out", help="PDF to write."),
    patient_code: Optional[str] = typer.Option(None, "--patient-code", help="Pseudonymous patient code (never a name)."),
    patch: Optional[str] = typer.Option(None, "--patch", help='Which patch, e.g. "left cheek".'),
    treatment: Optional[str] = typer.Option(None, "--treatment", help='e.g. "ruxolitinib 1.5% cream twice daily".'),
    event: Optional[list[str]] = typer.Option(
        None, "--event", help='"YYYY-MM-DD: what happened" (repeatable), e.g. "2026-03-02: NB-UVB started".'
    ),
    series: Optional[Path] = typer.Option(None, "--series", help="Folder of the photos, if moved since the analysis."),
) -> None:
    """Write the PDF report of an analysed series."""

    def action():
        from .report.pdf import write_report

        if out.suffix.lower() != ".pdf":
            _fail(f"--out must be a .pdf file, got {out.name!r}")
        write_report(out_dir, out, patient_code=patient_code, patch_label=patch, treatment=treatment,
                     events=event or (), series_dir=series)
        typer.echo(f"wrote {out}", err=True)

    _run(action)


accounts_app = typer.Typer(
    name="accounts", no_args_is_help=True,
    help="Clinic accounts of the app's store (REPIGMENT_DATA / REPIGMENT_DB_URL): clinicians, patients' access "
         "codes, the audit log. Without any clinician account the app is single-user and local only.")
app.add_typer(accounts_app)


def _store():
    from .store import Store

    return Store()


@accounts_app.command("add-clinician")
def add_clinician(
    username: str = typer.Argument(..., help="2-40 letters, digits, '.', '_' or '-'."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create a clinician's account (the password is asked for twice, never echoed)."""

    def action():
        from .store import accounts

        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        with _store() as store:
            accounts.add_clinician(store, username, password)
        typer.echo(f"clinician {username} added: the app now asks everyone to sign in", err=True)

    _run(action)


@accounts_app.command("remove-clinician")
def remove_clinician(username: str = typer.Argument(..., help="The clinician's username.")) -> None:
    """Delete a clinician's account (refused for the last one); their open sessions end."""

    def action():
        from .store import accounts

        with _store() as store:
            accounts.remove_clinician(store, username)
        typer.echo(f"clinician {username} removed", err=True)

    _run(action)


@accounts_app.command("check")
def check_accounts() -> None:
    """Exit 0 when clinic accounts are set up (the app may then serve a network), else 2 with the reason."""

    def action():
        from .store import accounts

        with _store() as store:
            if not accounts.accounts_enabled(store):
                _fail("no clinician account: without accounts the app serves this computer only; add one with "
                      "`repigment accounts add-clinician NAME`")
        typer.echo("accounts are set up: everyone signs in", err=True)

    _run(action)


def _patient_id(store, code: str) -> int:
    patient = store.patient_by_code(code)
    if patient is None:
        _fail(f"no patient with the code {code!r}")
    return patient.id


@accounts_app.command("patient-code")
def patient_code(code: str = typer.Argument(..., help="The patient's pseudonymous code, e.g. P-0001.")) -> None:
    """Issue a new personal access code for a patient and print it (shown once; only its hash is kept)."""

    def action():
        from .store import accounts

        with _store() as store:
            typer.echo(accounts.issue_patient_code(store, _patient_id(store, code)))

    _run(action)


@accounts_app.command("revoke-codes")
def revoke_codes(code: str = typer.Argument(..., help="The patient's pseudonymous code.")) -> None:
    """Revoke every access code of a patient."""

    def action():
        from .store import accounts

        with _store() as store:
            count = accounts.revoke_patient_codes(store, _patient_id(store, code))
        typer.echo(f"revoked {count} access code(s) of {code}", err=True)

    _run(action)


@accounts_app.command("audit")
def audit(
    patient: Optional[str] = typer.Option(None, "--patient", help="Only this patient's entries (code)."),
    last: int = typer.Option(50, "--last", min=1, max=100000, help="How many of the latest entries."),
) -> None:
    """Print the audit log, newest first: when, who, what, which patient, detail (tab-separated)."""

    def action():
        from .store import accounts

        with _store() as store:
            patient_id = None if patient is None else _patient_id(store, patient)
            codes = {p.id: p.code for p in store.patients()}
            for entry in accounts.audit_entries(store, patient_id=patient_id, limit=last):
                typer.echo("\t".join([entry.at.isoformat(timespec="seconds"), entry.actor, entry.action,
                                      codes.get(entry.patient_id, "" if entry.patient_id is None else
                                                f"(deleted #{entry.patient_id})"), entry.detail]))

    _run(action)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        from ._version import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="repigment", standalone_mode=True)
    except SystemExit as exc:
        sys.exit(exc.code)


if __name__ == "__main__":  # pragma: no cover
    main()
