"""`closetai ...` subcommands. Library errors become one line on stderr and exit code 2.

One module per group of commands, each with its `_cmd_*` functions and the `_add_*_command` that
declares its arguments: training (prepare, train, pseudo-label, evaluate), photos (detect), videos
(video), ingest, service (settings, worker, reindex), report (report, calibrate-report); common holds
what they share. Every name the single cli.py module had is importable from here as before.
"""

from __future__ import annotations

import argparse
import sys

from closetai import ClosetAIError, __version__
from closetai.cli.common import _add_store_options, _open_store, settings_load, video_settings  # noqa: F401
from closetai.cli.ingest import _add_ingest_command, _cmd_ingest, _ingest_on_workers, _ingest_videos, _sha256  # noqa: F401
from closetai.cli.photos import _add_detect_command, _cmd_detect  # noqa: F401
from closetai.cli.report import (  # noqa: F401
    _add_calibrate_report_command,
    _add_report_command,
    _cmd_calibrate_report,
    _cmd_report,
)
from closetai.cli.service import (  # noqa: F401
    _add_reindex_command,
    _add_settings_command,
    _add_worker_command,
    _cmd_reindex,
    _cmd_settings,
    _cmd_worker,
)
from closetai.cli.training import (  # noqa: F401
    SPLIT_KEYS,
    _add_evaluate_command,
    _add_prepare_command,
    _add_pseudo_label_command,
    _add_train_command,
    _cmd_evaluate,
    _cmd_prepare,
    _cmd_pseudo_label,
    _cmd_train,
    _condition_names,
    _evaluate_conditions,
    _fine_tune_split,
    _is_ccp,
    _record_split,
    _restrict_to_split,
    fine_tune_split_ids,
)
from closetai.cli.videos import DEFAULTS, _add_video_command, _cmd_video  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="closetai", description="Find, segment and count clothing in photos and videos.")
    p.add_argument("--version", action="version", version=f"closetai {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_prepare_command(sub)
    _add_train_command(sub)
    _add_pseudo_label_command(sub)
    _add_evaluate_command(sub)
    _add_detect_command(sub)
    _add_video_command(sub)
    _add_ingest_command(sub)
    _add_settings_command(sub)
    _add_worker_command(sub)
    _add_report_command(sub)
    _add_calibrate_report_command(sub)
    _add_reindex_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ClosetAIError as exc:
        print(f"closetai: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("closetai: interrupted", file=sys.stderr)
        return 130
