"""``build``: its options come from the declarations of the build's parameters
(kuairec_db/params.py)."""

from __future__ import annotations

from pathlib import Path

from kuairec_db.build import build
from kuairec_db.build import explain as explain_build
from kuairec_db.cli import common
from kuairec_db.params import PARAMETERS, BuildParams


def register(sub) -> None:
    p = sub.add_parser(
        "build",
        help="build the database from the KuaiRec files (or the synthetic demo)",
        formatter_class=common.RAW,
        description="Load, clean and evaluate KuaiRec, train the models, and write one DuckDB "
        "file.\n\nData: --data PATH (a folder of the CSVs, a folder holding 'KuaiRec 2.0/data',\n"
        "or KuaiRec.zip); else $KUAIREC_DATA, ./KuaiRec 2.0/data, ./KuaiRec/data, ./KuaiRec.zip;\n"
        "else a synthetic demo dataset (announced loudly and recorded in build_info).\n\n"
        "--db PATH is written only when PATH is missing or holds a database this project\n"
        "built (it has build_info); any other file there (a CSV, a SQLite or DuckDB database\n"
        "of your own) is refused and left as it was. To replace such a file on purpose,\n"
        "remove it first (rm PATH) or choose another --db.",
        epilog="examples:\n  python -m kuairec_db build\n"
        "  python -m kuairec_db build --data KuaiRec.zip --label ratio --label-threshold 2\n"
        "  python -m kuairec_db build --models popularity,als --set als.factors=64",
    )
    common.add_db(p)
    for parameter in PARAMETERS:  # in their order in BuildParams
        if parameter.option:
            common.add_parameter(p, parameter)
    p.add_argument(
        "--explain",
        action="store_true",
        help="say what a build would rebuild and why, without building (the database is "
        "left untouched)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    settings: dict[str, dict[str, str]] = {}
    for model, key, value in args.settings:
        settings.setdefault(model, {})[key] = value
    options = {p.name: getattr(args, p.name) for p in PARAMETERS if p.option}
    params = BuildParams(**{**options, "db": Path(args.db), "settings": settings})
    if args.explain:
        print("\n".join(explain_build(params)))
        return 0
    result = build(params)
    if result.up_to_date:
        print(f"{result.db} is up to date (nothing changed; --force rebuilds anyway)")
        return 0
    if result.kept:
        print(
            f"updated {result.db} in {result.seconds:.1f} s from {result.data_location}: "
            f"rebuilt {len(result.rebuilt)}, kept {len(result.kept)} tables and models "
            "(build_info: update_rebuilt)"
        )
    else:
        print(f"built {result.db} in {result.seconds:.1f} s from {result.data_location}")
    if result.data_kind == "synthetic_demo":
        print("note: this is SYNTHETIC DEMO data; see the README to build on the real KuaiRec")
    print(f"next: python -m kuairec_db metrics --db {args.db}")
    return 0
