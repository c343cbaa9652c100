"""Run the sandbox without Django: ``python -m sis.sandbox --provider oneroster-1.2 --port 0``.

Prints one JSON line with the URLs (so a parent process can read the port), then serves until
SIGTERM or Ctrl-C. ``manage.py sis_sandbox`` is the same with the project's settings.
"""

from __future__ import annotations

import argparse
import json
import sys

from sis.sandbox.server import PROVIDERS, make_server, serve_until_terminated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sis.sandbox")
    parser.add_argument("--provider", choices=PROVIDERS, required=True)
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--dataset", choices=["grand-bend"])
    parser.add_argument("--dataset-path")
    parser.add_argument("--faults", default="")
    parser.add_argument("--page-cap", type=int, default=1000)
    parser.add_argument("--client-id", default="sandbox-client")
    parser.add_argument("--client-secret", default="sandbox-secret")
    args = parser.parse_args(argv)
    try:
        server = make_server(
            provider=args.provider,
            students=args.students,
            seed=args.seed,
            port=args.port,
            dataset=args.dataset,
            dataset_path=args.dataset_path,
            faults=args.faults,
            page_cap=args.page_cap,
            client_id=args.client_id,
            client_secret=args.client_secret,
        )
    except (ValueError, OSError) as exc:
        print(f"sis_sandbox: {exc}", file=sys.stderr)
        return 2
    from sis.sandbox.testing import RunningSandbox

    info = RunningSandbox(server, None)  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "base_url": info.base_url,
                "api_base_url": info.api_base_url,
                "token_url": info.token_url,
            }
        ),
        flush=True,
    )
    serve_until_terminated(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
