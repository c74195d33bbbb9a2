#!/usr/bin/env python3
"""Back up and restore a Kite deployment's state (docs/deployment.md, "Backups").

    python deploy/kite_backup.py backup  /backups       # -> /backups/kite-<UTC time>/
    python deploy/kite_backup.py restore /backups/kite-20250101T000000Z

What is saved:
- Postgres (POSTGRES_URL: sessions): ``pg_dump`` as plain SQL, restored with ``psql``;
- KITE_HOME: every SQLite file (session store when there is no Postgres, the vector
  store's texts) through SQLite's online backup API, so a live WAL database is copied
  consistently; each vector index directory is copied while holding its ``write.lock``
  (the lock kite_lab's writers take), so the FAISS index and its texts match.
  ``models/`` (rebuilt from the installed package) and lock/WAL files are skipped.

Redis holds caches, breaker state, rate-limit windows and idempotency records: all of it
expires or rebuilds by design, so it is not part of the backup.

Restore into a stopped service (``docker-compose stop kite``): psql replays the dump into
POSTGRES_URL's database (which should be empty), and the KITE_HOME files are copied
back. Only the standard library and the PostgreSQL client tools are needed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SKIP_SUFFIXES = (".lock", "-wal", "-shm", "-journal")
SKIP_DIRS = {"models"}


def _pg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://").replace(
        "postgres://", "postgresql://"
    )


def _copy_sqlite(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _copy_tree(src: Path, dst: Path) -> list[str]:
    """Copy ``src`` into ``dst``; vector directories under their write lock."""
    copied: list[str] = []
    for directory, subdirs, files in os.walk(src):
        here = Path(directory)
        rel = here.relative_to(src)
        if rel.parts and rel.parts[0] in SKIP_DIRS:
            subdirs[:] = []
            continue
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        lock_fd = None
        if "write.lock" in files:  # a vector memory directory: freeze its writers
            lock_fd = os.open(here / "write.lock", os.O_RDWR)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            for name in files:
                if name.endswith(SKIP_SUFFIXES) or name.startswith("."):
                    continue
                source, target = here / name, dst / rel / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if name.endswith(SQLITE_SUFFIXES):
                    _copy_sqlite(source, target)
                else:
                    shutil.copy2(source, target)
                copied.append(str(rel / name))
        finally:
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                os.close(lock_fd)
    return copied


def backup(dest_root: Path, kite_home: Path, postgres_url: str | None) -> Path:
    dest = dest_root / time.strftime("kite-%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=False)
    manifest: dict[str, object] = {"created": time.time(), "postgres": False, "kite_home": []}
    if postgres_url:
        with open(dest / "postgres.sql", "wb") as out:
            subprocess.run(
                ["pg_dump", "--no-owner", "--no-privileges", f"--dbname={_pg_url(postgres_url)}"],
                stdout=out,
                check=True,
            )
        manifest["postgres"] = True
    if kite_home.is_dir():
        manifest["kite_home"] = _copy_tree(kite_home, dest / "kite_home")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return dest


def restore(src: Path, kite_home: Path, postgres_url: str | None) -> None:
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("postgres"):
        if not postgres_url:
            raise SystemExit("the backup has a Postgres dump: set POSTGRES_URL to restore it")
        with open(src / "postgres.sql", "rb") as dump:
            subprocess.run(
                ["psql", "--quiet", "-v", "ON_ERROR_STOP=1", f"--dbname={_pg_url(postgres_url)}"],
                stdin=dump,
                stdout=subprocess.DEVNULL,
                check=True,
            )
    saved = src / "kite_home"
    if saved.is_dir():
        kite_home.mkdir(parents=True, exist_ok=True)
        for rel in manifest.get("kite_home", []):
            target = kite_home / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            for stale in (target.with_name(target.name + s) for s in ("-wal", "-shm")):
                stale.unlink(missing_ok=True)  # WAL of the replaced database
            shutil.copy2(saved / rel, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["backup", "restore"])
    parser.add_argument("path", type=Path, help="backup root (backup) or one backup (restore)")
    parser.add_argument(
        "--kite-home", type=Path, default=Path(os.environ.get("KITE_HOME", ".kite"))
    )
    parser.add_argument("--postgres-url", default=os.environ.get("POSTGRES_URL") or None)
    args = parser.parse_args(argv)
    if args.action == "backup":
        print(backup(args.path, args.kite_home, args.postgres_url))
    else:
        restore(args.path, args.kite_home, args.postgres_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
